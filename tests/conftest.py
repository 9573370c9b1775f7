import torch

# Two cores shared with other jobs: one intra-op thread avoids OpenMP contention stalls (measured
# here: a 78k-element op went from ~20 us to ~4 ms with two threads on a loaded machine).
torch.set_num_threads(1)
