"""`accelerate launch -m pretrain --config recipes/<model>/pretrain.yaml [--key value ...]`"""

from trl import SFTConfig, TrlParser

from creative4u.training import ModelArguments, setup_logging
from pretrain.train import PretrainScriptArguments, main

if __name__ == "__main__":
    parser = TrlParser((PretrainScriptArguments, SFTConfig, ModelArguments))
    script_args, training_args, model_args = parser.parse_args_and_config()
    setup_logging(training_args)
    main(script_args, training_args, model_args)
