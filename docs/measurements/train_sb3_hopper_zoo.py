"""Train the README worked example's external agent: SB3 PPO on Hopper-v5 with the RL Zoo's
Hopper PPO hyperparameters (hyperparams/ppo.yml of rl-baselines3-zoo: VecNormalize, 512 steps,
minibatch 32, 5 epochs, γ 0.999, λ 0.99, lr 9.80828e-5, ent 0.00229519, vf 0.835671,
max grad norm 0.7, [256, 256] ReLU, log-std init −2, no orthogonal init), saved the way the
Zoo saves (OUT/ppo/Hopper-v5_1/Hopper-v5.zip and Hopper-v5/vecnormalize.pkl).

  python docs/measurements/train_sb3_hopper_zoo.py OUT [TIMESTEPS]   # default 1,000,000
"""
import sys
from pathlib import Path

import torch
from stable_baselines3 import PPO
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.monitor import Monitor  # noqa: F401  (make_vec_env wraps in Monitor)
from stable_baselines3.common.vec_env import VecNormalize

out = Path(sys.argv[1])
timesteps = int(float(sys.argv[2])) if len(sys.argv) > 2 else 1_000_000
torch.set_num_threads(1)
env = VecNormalize(make_vec_env("Hopper-v5", n_envs=1, seed=0), gamma=0.999)
model = PPO("MlpPolicy", env, seed=0, device="cpu", n_steps=512, batch_size=32, n_epochs=5, gamma=0.999,
            gae_lambda=0.99, learning_rate=9.80828e-05, ent_coef=0.00229519, clip_range=0.2, vf_coef=0.835671,
            max_grad_norm=0.7, policy_kwargs=dict(log_std_init=-2, ortho_init=False, activation_fn=torch.nn.ReLU,
                                                  net_arch=dict(pi=[256, 256], vf=[256, 256])), verbose=0)
model.learn(timesteps, progress_bar=False)
run = out / "ppo" / "Hopper-v5_1"
(run / "Hopper-v5").mkdir(parents=True, exist_ok=True)
model.save(run / "Hopper-v5.zip")
env.save(str(run / "Hopper-v5" / "vecnormalize.pkl"))
returns = [info["r"] for info in model.ep_info_buffer]
print(f"saved {run}; mean return of the last {len(returns)} training episodes: {sum(returns) / len(returns):.1f}")
