"""Training: shared LoRA / quantisation / saving, preference training (DPO, IPO, ORPO, SimPO)
with trl + peft, tiny models for tests, and GGUF writing. Heavy imports stay inside functions."""
