"""Training: shared options, LoRA / quantisation, run loop and saving (``common``), preference
training (DPO, IPO, ORPO, SimPO) and supervised fine-tuning with trl + peft, draft distillation
for speculative decoding, tiny models for tests, and GGUF writing. Heavy imports stay inside
functions."""
