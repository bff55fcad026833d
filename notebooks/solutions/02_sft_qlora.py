"""Solutions to notebook 02's exercises (tests/test_exercises.py runs them through the notebook's checkers)."""


def mask_labels(input_ids, attention_mask, prompt_lengths):
    """Exercise 02.2: labels = the input tokens, -100 on each row's prompt and on padding."""
    labels = input_ids.clone()
    for i, n in enumerate(prompt_lengths):
        labels[i, :n] = -100
    labels[attention_mask == 0] = -100
    return labels


def lora_parameters(d_in, d_out, r):
    """Exercise 02.1: LoRA's A (r x d_in) and B (d_out x r) of one linear layer."""
    return r * d_in + d_out * r
