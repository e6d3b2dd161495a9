"""`accelerate launch -m pretrain --config recipes/<model>/pretrain.yaml [--key value ...]`"""

import logging

from trl import SFTConfig, TrlParser

from creative4u.training import ModelArguments
from pretrain.train import PretrainScriptArguments, main

if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    parser = TrlParser((PretrainScriptArguments, SFTConfig, ModelArguments))
    script_args, training_args, model_args = parser.parse_args_and_config()
    main(script_args, training_args, model_args)
