"""PyTorch peer of benches/train_throughput.rs: the same MLP (31->128->128->64, ReLU,
L2-normalised), the same proxy loss (CosFace, scale 16, margin 0.2, one proxy per person),
Adam lr 1e-3, batch 256, 41 people x 400 vectors. Prints one JSON line.
Usage: python3 train_throughput_torch.py [threads] [device]"""
import json, sys, time
import torch
import torch.nn.functional as F

threads = int(sys.argv[1]) if len(sys.argv) > 1 else 1
device = sys.argv[2] if len(sys.argv) > 2 else "cpu"
torch.set_num_threads(threads)
torch.manual_seed(1)
P, N, D = 41, 400, 31
g = torch.Generator().manual_seed(5)
centres = torch.randn(P, D, generator=g)
X = (centres.repeat_interleave(N, 0) + 0.5 * torch.randn(P * N, D, generator=g)).to(device)
Y = torch.arange(P).repeat_interleave(N).to(device)
net = torch.nn.Sequential(torch.nn.Linear(D, 128), torch.nn.ReLU(), torch.nn.Linear(128, 128),
                          torch.nn.ReLU(), torch.nn.Linear(128, 64)).to(device)
proxies = torch.nn.Parameter(0.1 * torch.randn(P, 64, device=device))
opt = torch.optim.Adam(list(net.parameters()) + [proxies], lr=1e-3)

def steps(n):
    for _ in range(n):
        idx = torch.randint(0, P * N, (256,), device=device)
        e = F.normalize(net(X[idx]), dim=1)
        onehot = F.one_hot(Y[idx], P).float()
        logits = 16.0 * (e @ F.normalize(proxies, dim=1).T - 0.2 * onehot)
        loss = -(F.log_softmax(logits, 1) * onehot).sum(1).mean()
        loss.item()  # the Rust loop reads the loss every step too
        opt.zero_grad()
        loss.backward()
        opt.step()

steps(50)
n = int(sys.argv[3]) if len(sys.argv) > 3 else 500
t = time.perf_counter()
steps(n)
if device != "cpu":
    torch.cuda.synchronize()
secs = time.perf_counter() - t
print(json.dumps({"impl": f"pytorch-{torch.__version__}", "backend": f"{device}-{threads}thread",
                  "steps": n, "batch": 256, "seconds": round(secs, 4), "steps_per_s": round(n / secs, 2)}))
