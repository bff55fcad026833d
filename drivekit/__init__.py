"""drivekit: helpers for the interpretable-driving VLM course (SFT with QLoRA, CLIP reward, A2C)."""

__version__ = "0.1.0"
