# Runs an exported prefrl policy (prefrl export) on a Gymnasium-API environment: PyTorch and
# Gymnasium, no prefrl code. Usage: python3 run_exported.py BUNDLE [GYM_ID] [EPISODES]
import json
import sys

import gymnasium as gym
import torch

bundle = sys.argv[1]
card = json.load(open(f"{bundle}/model_card.json"))
policy = torch.jit.load(f"{bundle}/policy.pt")
# prefrl's environments name the Gymnasium one they match (e.g. "Gymnasium Pendulum-v1").
gym_id = sys.argv[2] if len(sys.argv) > 2 else card["env"]["reference"].split()[-1]
env = gym.make(gym_id)
for episode in range(int(sys.argv[3]) if len(sys.argv) > 3 else 3):
    obs, info = env.reset(seed=episode)
    episode_return, done = 0.0, False
    while not done:
        with torch.no_grad():
            action = policy.act(torch.as_tensor(obs, dtype=torch.float32).unsqueeze(0))[0].numpy()
        if card["policy"]["discrete"]:
            action = int(action[0])
        obs, reward, terminated, truncated, info = env.step(action)
        episode_return += float(reward)
        done = terminated or truncated
    print(f"episode {episode}: return {episode_return:.2f}")
