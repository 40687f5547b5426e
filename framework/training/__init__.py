"""Training: LoRA on a dataset version with transformers Trainer + peft, then publishing it."""
