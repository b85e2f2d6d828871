"""Skill evaluation: every skill run deterministically on held-out seeds, measured, drawn, filmed.

The measures (logged as `eval/<name>`, compared by `skillforge library compare`):

| measure | meaning |
|---|---|
| `discriminator_accuracy` | how often argmax q(z|s) names the skill that reached s (chance 1/N) |
| `log_q_z` | mean log q(z|s) on the rollouts (chance -ln N, perfect 0) |
| `mutual_information_bound` | E[log q(z|s)] + ln N, a lower bound on I(S;Z) in nats |
| `mutual_information_fraction` | the bound divided by ln N: 0 chance, 1 perfect |
| `effective_skills` | exp(entropy of the predicted-skill histogram): N if all are recognised |
| `return/skill_NN`, `return_std/skill_NN` | extrinsic return of skill NN over the episodes |
| `best_skill_return`, `best_skill` | the skill with the highest mean return |
| `coverage_bins` | distinct position bins visited over all rollouts (`skillforge.core.positions`) |
| `random_coverage_bins` | the same for a uniformly random policy, same number of episodes |

Every skill weighs the same in the discriminator measures (the expectation is over the
uniform p(z)), however long its episodes are.

I(S;Z) is never negative, so a negative bound (held-out log q(z|s) below chance, as in
libraries trained for few steps) is vacuous, not wrong: `skillforge evaluate` says so, and
`library compare` also shows the bound floored at 0.


"""

from __future__ import annotations

import math

import numpy as np
import torch


def coverage_bins(positions: list[np.ndarray], bin_size: float) -> int:
    """Distinct bins of side `bin_size` visited by any of the (T, dims) position arrays."""
    if not positions:
        return 0
    cells = np.floor(np.concatenate(positions) / bin_size).astype(np.int64)  # (points, dims)
    return len(np.unique(cells, axis=0))


def discriminator_scores(
    discriminator: torch.nn.Module, observations: list[np.ndarray], n_skills: int
) -> tuple[dict[str, float], np.ndarray]:
    """Measures of q(z|s) on states visited by each skill (`observations[k]`, (T_k, obs_dim)).

    Each skill weighs 1/N, as under the uniform prior p(z). Returns the measures and the
    confusion matrix (n_skills, n_skills): row k is how q classifies skill k's states.
    """
    log_q_z = np.zeros(n_skills)
    confusion = np.zeros((n_skills, n_skills))
    with torch.no_grad():
        for skill, states in enumerate(observations):
            logits = discriminator(torch.as_tensor(states, dtype=torch.float32))
            log_q = logits.double().log_softmax(dim=-1)  # (T_k, n_skills)
            log_q_z[skill] = log_q[:, skill].mean().item()
            predicted = log_q.argmax(dim=-1)
            confusion[skill] = torch.bincount(predicted, minlength=n_skills).double().numpy()
            confusion[skill] /= len(states)
    predicted_share = confusion.mean(axis=0)  # histogram of predicted skills, (n_skills,)
    nonzero = predicted_share[predicted_share > 0]
    ln_n = math.log(n_skills)
    bound = float(log_q_z.mean()) + ln_n
    scores = {
        "discriminator_accuracy": float(np.trace(confusion) / n_skills),
        "log_q_z": float(log_q_z.mean()),
        "mutual_information_bound": bound,
        "mutual_information_fraction": bound / ln_n,
        "effective_skills": float(np.exp(-(nonzero * np.log(nonzero)).sum())),
    }
    return scores, confusion
