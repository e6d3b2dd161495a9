"""`accelerate launch -m rl --config recipes/<model>/grpo.yaml [--key value ...]`"""

from trl import GRPOConfig, TrlParser

from creative4u.training import ModelArguments, setup_logging
from rl.train import GRPOScriptArguments, main

if __name__ == "__main__":
    parser = TrlParser((GRPOScriptArguments, GRPOConfig, ModelArguments))
    script_args, training_args, model_args = parser.parse_args_and_config()
    setup_logging(training_args)
    main(script_args, training_args, model_args)
