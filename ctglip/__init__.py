__version__ = "0.1.0"


def load(path, device='cpu'):
    "The trained model of a run folder, a checkpoint folder or its `model.safetensors`, in eval mode, its config as `model.cfg` (`ctglip.runs.load`)."
    from .runs import load as load_model
    return load_model(path, device)
