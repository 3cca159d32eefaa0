import os
os.environ.setdefault('HF_HUB_OFFLINE', '1')
os.environ.setdefault('TRANSFORMERS_OFFLINE', '1')
os.environ.setdefault('TQDM_DISABLE', '1')
os.environ.setdefault('PYTHONHASHSEED', '0')
# two pytest workers share the CI machine's two cores: one math thread each avoids oversubscription
os.environ.setdefault('OMP_NUM_THREADS', '1')
os.environ.setdefault('MKL_NUM_THREADS', '1')
