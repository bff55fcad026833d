"""Solutions to notebook 04's exercises (tests/test_exercises.py runs them through the notebook's checkers)."""
import numpy as np


def my_incremental_rewards(values_at_ends, ends, length):
    """Exercise 04.1: token k − 1 gets R(T_k) − R(T_previous end) for each scored prefix length k; 0 elsewhere."""
    rewards = np.zeros(length)
    previous = 0.0  # R of the empty text
    for k, value in zip(ends, values_at_ends):
        rewards[k - 1] = value - previous
        previous = value
    return rewards


def my_returns_advantages(rewards, values, discount):
    """Exercise 04.2: G_t = r_{t+1} + γ·G_{t+1} from the last token backwards (G = 0 after it); A_t = G_t − V(s_t)."""
    returns = np.zeros(len(rewards))
    running = 0.0
    for t in reversed(range(len(rewards))):
        running = rewards[t] + discount * running
        returns[t] = running
    return returns, returns - np.asarray(values, dtype=float)


def my_a2c_loss(logp, entropy, values, returns, mask, value_coef, entropy_coef):
    """Exercise 04.3: −mean(A·log π) + c_v·mean((V − G)²) − c_e·mean(H) over the valid tokens, A = G − V detached."""
    def mean(x):  # over the valid tokens only
        return (x * mask).sum() / mask.sum()

    advantages = returns - values.detach()  # the policy term must not train the critic
    policy = -mean(advantages * logp)
    value = mean((values - returns) ** 2)
    return policy + value_coef * value - entropy_coef * mean(entropy)
