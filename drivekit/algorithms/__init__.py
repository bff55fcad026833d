"""Layer 7, algorithms, each readable alone: ``sft`` (the QLoRA SFT loop), ``a2c`` (A2C in one file),
``grpo`` (GRPO through trl), ``checkpoints`` (numbered checkpoint folders, written atomically).
"""
