"""Rationale teachers: who writes the protocol-format reasoning that CoT-SFT learns from.

- `features` (offline, the default): measured image features compared dimension by dimension;
- `scene` (offline, CreativeSim worlds only): the simulator's scene record and true per-dimension
  comparisons, standing in for the strong VLM annotator that cannot run on CPU;
- `openai`: any OpenAI-compatible VLM, with rejection sampling against the label and the
  `features` rationale as fallback.

Every rationale a teacher returns parses well-formed with the labelled winner.
"""

TEACHERS: tuple[str, ...] = ("features", "scene", "openai")
