"""`mlops gpu`: memory, utilisation and processes of the GPUs now, through NVML."""
