"""A seed-style notebook, written for PyTorch and ported to scratchnet with only the inherent
changes: a convolutional denoising autoencoder on MNIST-shaped images, a map-style Dataset
and a DataLoader, Adam with StepLR, and a forward hook on the encoder.

The two versions below are the same text but for the lines listed in PORT: the imports,
the array spelling of two tensor idioms (``torch.from_numpy``, ``.numpy()``), manual backward
(``loss.backward()`` and the model's ``backward``) and ``loss.item()``. The scratchnet version
must run and learn; where PyTorch is installed, both run from the same initial weights
and batches and must produce the same losses step by step.
"""
import difflib

import numpy as np
import pytest
from threadpoolctl import threadpool_limits


@pytest.fixture(autouse=True)
def one_blas_thread():
    """Small matrices: one BLAS thread is faster than two, and much faster on a busy
    machine, where threads wait for each other (PyTorch's own pool: set in its test)."""
    with threadpool_limits(1):
        yield


TORCH_NOTEBOOK = '''
import numpy as np
import torch
from torch import nn, optim
from torch.utils.data import DataLoader, Dataset

BATCH_SIZE, EPOCHS, LR, NOISE, SHUFFLE = 32, 3, 1e-2, 0.5, True


class NoisyDigits(Dataset):
    def __init__(self, images, noise):
        self.images, self.noise = images, noise

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        clean = self.images[i]
        noise = np.random.default_rng(i).standard_normal(clean.shape).astype(np.float32)
        noisy = np.clip(clean + self.noise * noise, 0, 1)
        return torch.from_numpy(noisy), torch.from_numpy(clean)


class Autoencoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = nn.Sequential(
            nn.Conv2d(1, 16, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.ReLU())
        self.decoder = nn.Sequential(
            nn.ConvTranspose2d(32, 16, 3, stride=2, padding=1, output_padding=1), nn.ReLU(),
            nn.ConvTranspose2d(16, 1, 3, stride=2, padding=1, output_padding=1), nn.Sigmoid())

    def forward(self, x):
        return self.decoder(self.encoder(x))


torch.manual_seed(0)
train_loader = DataLoader(NoisyDigits(train_images, NOISE), batch_size=BATCH_SIZE, shuffle=SHUFFLE)
model = Autoencoder()
criterion = nn.MSELoss()
optimizer = optim.Adam(model.parameters(), lr=LR, weight_decay=1e-5)
scheduler = optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)
# --- training ---
codes = []
hook = model.encoder.register_forward_hook(lambda module, inputs, output: codes.append(output.shape))

losses = []
for epoch in range(EPOCHS):
    for noisy, clean in train_loader:
        optimizer.zero_grad()
        loss = criterion(model(noisy), clean)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    scheduler.step()
    print(f"epoch {epoch + 1}: loss {losses[-1]:.4f}, lr {scheduler.get_last_lr()[0]:.2e}")
hook.remove()

with torch.no_grad():
    noisy, clean = next(iter(train_loader))
    denoised = model(noisy).numpy()
'''

# (PyTorch line, scratchnet line): every line the port replaces, in the order they appear.
REPLACED = [
    ("import torch", "import scratchnet"),
    ("from torch import nn, optim", "from scratchnet import nn, optim"),
    ("from torch.utils.data import DataLoader, Dataset", "from scratchnet.data import DataLoader, Dataset"),
    ("        return torch.from_numpy(noisy), torch.from_numpy(clean)", "        return noisy, clean"),
    ("torch.manual_seed(0)", "scratchnet.manual_seed(0)"),
    ("        loss.backward()", "        model.backward(criterion.backward())"),
    ("        losses.append(loss.item())", "        losses.append(float(loss))"),
    ("with torch.no_grad():", "with scratchnet.no_grad():"),
    ("    denoised = model(noisy).numpy()", "    denoised = scratchnet.to_numpy(model(noisy))"),
]
# ... and the one addition: the custom model's backward, after its forward.
FORWARD_END = "        return self.decoder(self.encoder(x))"
BACKWARD = ["", "    def backward(self, grad_output):",
            "        return self.encoder.backward(self.decoder.backward(grad_output))"]


def _port(source: str) -> str:
    replace = dict(REPLACED)
    out = []
    for line in source.split("\n"):
        out.append(replace.get(line, line))
        if line == FORWARD_END:
            out += BACKWARD
    return "\n".join(out)


SCRATCHNET_NOTEBOOK = _port(TORCH_NOTEBOOK)


def digits(n: int = 256, seed: int = 0) -> np.ndarray:
    """MNIST-shaped images (n, 1, 28, 28) in [0, 1]: two or three thick strokes each."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:28, 0:28].astype(np.float32)
    images = np.zeros((n, 1, 28, 28), dtype=np.float32)
    for img in images:
        for _ in range(rng.integers(2, 4)):
            (y0, x0), (y1, x1) = rng.uniform(5, 23, (2, 2))
            t = np.clip(((yy - y0) * (y1 - y0) + (xx - x0) * (x1 - x0))
                        / max((y1 - y0) ** 2 + (x1 - x0) ** 2, 1e-6), 0, 1)
            d = np.hypot(yy - (y0 + t * (y1 - y0)), xx - (x0 + t * (x1 - x0)))
            img[0] = np.maximum(img[0], np.clip(2.0 - d, 0, 1))
    return images


def _run(source: str, images: np.ndarray, shuffle: bool = True, between=None) -> dict:
    """Execute a notebook (its two cells, with ``between(namespace)`` run between them)."""
    source = source.replace("SHUFFLE = 32, 3, 1e-2, 0.5, True", f"SHUFFLE = 32, 3, 1e-2, 0.5, {shuffle}")
    setup, training = source.split("# --- training ---")
    namespace = {"train_images": images}
    exec(compile(setup, "notebook", "exec"), namespace)
    if between is not None:
        between(namespace)
    exec(compile(training, "notebook", "exec"), namespace)
    return namespace


def test_the_port_changes_only_the_inherent_lines():
    diff = [line for line in difflib.ndiff(TORCH_NOTEBOOK.split("\n"), SCRATCHNET_NOTEBOOK.split("\n"))
            if line[:2] in ("- ", "+ ")]
    removed = [line[2:] for line in diff if line.startswith("- ")]
    added = [line[2:] for line in diff if line.startswith("+ ") and line[2:].strip()]
    mine = [m for _, m in REPLACED]
    assert removed == [t for t, _ in REPLACED]
    assert added == mine[:4] + BACKWARD[1:] + mine[4:]
    code_lines = [line for line in TORCH_NOTEBOOK.split("\n") if line.strip()]
    assert len(code_lines) == 49                     # 9 lines replaced and 2 added, of 49


def test_the_ported_notebook_trains_a_denoiser(capsys):
    images = digits(160)
    ns = _run(SCRATCHNET_NOTEBOOK, images)
    losses, codes = ns["losses"], ns["codes"]
    assert len(losses) == 3 * 5 and len(codes) == 3 * 5             # the hook saw every forward
    assert set(codes) == {(32, 32, 7, 7)}
    assert ns["scheduler"].get_last_lr() == [pytest.approx(1.25e-3)]
    assert np.mean(losses[-3:]) < 0.5 * np.mean(losses[:3])
    out = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in out] == ["epoch 1", "epoch 2", "epoch 3"]
    noisy, clean, denoised = (np.asarray(ns[k]) for k in ("noisy", "clean", "denoised"))
    assert type(ns["denoised"]) is np.ndarray and denoised.shape == (32, 1, 28, 28)
    assert ((denoised - clean) ** 2).mean() < ((noisy - clean) ** 2).mean()    # it denoises


def test_both_notebooks_give_the_same_losses_from_the_same_start():
    torch = pytest.importorskip("torch")
    images = digits(64)
    start = {}

    def keep_weights(ns):
        start.update({k: v.copy() for k, v in ns["model"].state_dict().items()})

    def same_weights(ns):
        ns["model"].load_state_dict({k: torch.from_numpy(v) for k, v in start.items()})

    mine = _run(SCRATCHNET_NOTEBOOK, images, shuffle=False, between=keep_weights)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        theirs = _run(TORCH_NOTEBOOK, images, shuffle=False, between=same_weights)
    finally:
        torch.set_num_threads(threads)
    assert len(mine["losses"]) == 6
    np.testing.assert_allclose(mine["losses"], theirs["losses"], rtol=1e-4)
    assert mine["losses"][0] == pytest.approx(theirs["losses"][0], rel=1e-6)
    assert [tuple(s) for s in theirs["codes"]] == mine["codes"]
