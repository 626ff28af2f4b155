"""Train issue 27's worked example (part 3): SB3 PPO on Hopper-v5 with the RL Zoo's Hopper PPO
hyperparameters (as docs/measurements/train_sb3_hopper_zoo.py: VecNormalize γ 0.999, 512
steps, minibatch 32, 5 epochs, γ 0.999, λ 0.99, lr 9.80828e-5, ent 0.00229519, vf 0.835671,
max grad norm 0.7, [256, 256] ReLU, log-std init −2, no orthogonal init), saving along the way

* with SB3's own CheckpointCallback every SAVE_EVERY = 100352 steps (196 rollouts of 512):
  OUT/zoo_series/rl_model_{S}_steps.zip and rl_model_vecnormalize_{S}_steps.pkl, the series
  that docs/measurements/agents_series/config.yaml probes (`agents: zoo_ppo`);
* with pgprobe's ProbeCheckpointCallback at the same rollouts (iterations 196k − 1):
  OUT/zoo_series/pgprobe/iterNNNN.pt, probe-complete checkpoints whose saved rollout buffer
  replays SB3's actual next update (pgprobe.integrations.sb3.replay_next_update).

  python docs/measurements/agents_series/train_sb3_hopper_zoo_series.py OUT [TIMESTEPS [ROLLOUTS_PER_SAVE]]
      # defaults 1,024,000 = 2000 rollouts = pgprobe PPO's 500 x 2048 (Table 1), and 196
      # (a smoke test: OUT 2048 2)
"""
import sys
import time
from pathlib import Path

import torch
from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import CheckpointCallback
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import VecNormalize

from pgprobe.integrations.sb3 import ProbeCheckpointCallback

N_STEPS = 512
out = Path(sys.argv[1]) / "zoo_series"
timesteps = int(float(sys.argv[2])) if len(sys.argv) > 2 else 1_024_000
SAVE_ROLLOUTS = int(sys.argv[3]) if len(sys.argv) > 3 else 196
SAVE_EVERY = N_STEPS * SAVE_ROLLOUTS          # 100352 = 49 pgprobe iterations of 2048 steps
torch.set_num_threads(1)
env = VecNormalize(make_vec_env("Hopper-v5", n_envs=1, seed=0), gamma=0.999)
model = PPO("MlpPolicy", env, seed=0, device="cpu", n_steps=N_STEPS, batch_size=32, n_epochs=5, gamma=0.999,
            gae_lambda=0.99, learning_rate=9.80828e-05, ent_coef=0.00229519, clip_range=0.2, vf_coef=0.835671,
            max_grad_norm=0.7, policy_kwargs=dict(log_std_init=-2, ortho_init=False, activation_fn=torch.nn.ReLU,
                                                  net_arch=dict(pi=[256, 256], vf=[256, 256])), verbose=0)
iterations = [SAVE_ROLLOUTS * k - 1 for k in range(1, timesteps // SAVE_EVERY + 1)]
callbacks = [CheckpointCallback(SAVE_EVERY, str(out), save_vecnormalize=True),
             ProbeCheckpointCallback(iterations, out / "pgprobe", env_id="Hopper-v5", name="zoo_ppo")]
start, cpu = time.time(), time.process_time()
model.learn(timesteps, callback=callbacks, progress_bar=False)
returns = [info["r"] for info in model.ep_info_buffer]
print(f"saved {out}: {len(iterations)} checkpoints per callback; {time.time() - start:.0f} s wall, "
      f"{time.process_time() - cpu:.0f} s CPU; mean return of the last {len(returns)} training episodes: "
      f"{sum(returns) / len(returns):.1f}")
