"""`accelerate launch -m rl --config recipes/<model>/grpo.yaml [--key value ...]`"""

import logging

from trl import GRPOConfig, TrlParser

from creative4u.training import ModelArguments
from rl.train import GRPOScriptArguments, main

if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    parser = TrlParser((GRPOScriptArguments, GRPOConfig, ModelArguments))
    script_args, training_args, model_args = parser.parse_args_and_config()
    main(script_args, training_args, model_args)
