"""creative4u: explainable ad-creative selection with a Qwen-VL model.

The core library every stage imports: the Creative Evaluation Protocol, the image loader, model
loading and the offline model factory, generation backends, and the CLI.
"""

__version__ = "0.1.0"
