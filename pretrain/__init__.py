"""Perception pretraining of from-scratch bases: `accelerate launch -m pretrain --config ...`."""
