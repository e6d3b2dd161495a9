"""`accelerate launch -m sft --config recipes/<model>/sft.yaml [--key value ...]`"""

from trl import SFTConfig, TrlParser

from creative4u.training import ModelArguments, setup_logging
from sft.train import SFTScriptArguments, main

if __name__ == "__main__":
    parser = TrlParser((SFTScriptArguments, SFTConfig, ModelArguments))
    script_args, training_args, model_args = parser.parse_args_and_config()
    setup_logging(training_args)
    main(script_args, training_args, model_args)
