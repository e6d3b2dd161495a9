"""`accelerate launch -m sft --config recipes/<model>/sft.yaml [--key value ...]`"""

import logging

from trl import SFTConfig, TrlParser

from creative4u.training import ModelArguments
from sft.train import SFTScriptArguments, main

if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    parser = TrlParser((SFTScriptArguments, SFTConfig, ModelArguments))
    script_args, training_args, model_args = parser.parse_args_and_config()
    main(script_args, training_args, model_args)
