"""Forward time and peak memory of every network preset on the CPU, printed as a Markdown table.

For each registry preset, spatial dimensionality and precision, the script builds the network with random
weights (eval mode, ``channels_last`` memory format), runs ``--warmup`` untimed forwards and ``--repeats`` timed
forwards under ``torch.inference_mode()`` on one 256×256 slice (2D, batch 1) or one 64³ block (3D, batch 1),
and reports the median time. "bf16" means ``torch.autocast("cpu", torch.bfloat16)`` around the forward.

Memory is the peak resident set size (RSS) of the process during the forwards (warm-up included) minus the RSS
just before them: the working memory of inference (activations, im2col buffers), not counting the weights, whose
size is reported separately. Each case runs in a fresh child process (``ru_maxrss``), so earlier cases cannot
hide memory in the allocator's cache; ``--in-process`` skips that isolation (faster, memory column then
unreliable).

Examples::

    python benchmarks/networks_speed.py --presets dncnn-small --dims 2 --repeats 2
    python benchmarks/networks_speed.py --threads 2 --dtypes bf16
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence

import psutil
import torch

from meddenoiselib.networks import count_parameters, create_network, get_network_spec, list_networks

__all__ = ["main", "measure"]

DTYPES = ("fp32", "bf16")


def measure(name: str, spatial_dims: int, dtype: str, size: int, repeats: int = 3, warmup: int = 1) -> dict:
    """Time the forward pass of one preset in this process.

    Args:
        name: registry name.
        spatial_dims: 2 or 3.
        dtype: ``"fp32"`` or ``"bf16"`` (bf16 autocast).
        size: edge of the square/cubic input.
        repeats: timed forwards. Defaults to 3.
        warmup: untimed forwards first. Defaults to 1.

    Returns:
        A dict with ``params``, ``weights_mib``, ``median_ms``, ``min_ms`` and ``peak_rss_mib`` (the process's
        peak RSS so far minus the RSS before the first forward: meaningful in a fresh process).
    """
    spec = get_network_spec(name)
    torch.manual_seed(0)
    net = create_network(name, spatial_dims=spatial_dims).eval()
    memory_format = torch.channels_last if spatial_dims == 2 else torch.channels_last_3d
    net = net.to(memory_format=memory_format)
    channels = spec.burst + int(spec.noise_map)
    x = torch.rand(1, channels, *([size] * spatial_dims)).contiguous(memory_format=memory_format)
    params = count_parameters(net)
    times = []
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == "bf16"):
        # a tiny forward first pays the one-off library start-up (thread pool, oneDNN), not counted below
        tiny = 2 * net.size_multiple if net.size_multiple > 1 else 8
        net(torch.rand(1, channels, *([tiny] * spatial_dims)).contiguous(memory_format=memory_format))
        rss_before = psutil.Process().memory_info().rss
        for _ in range(warmup):
            net(x)
        for _ in range(repeats):
            start = time.perf_counter()
            net(x)
            times.append(time.perf_counter() - start)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
    return {
        "params": params,
        "weights_mib": params * 4 / 2**20,
        "median_ms": 1000 * statistics.median(times),
        "min_ms": 1000 * min(times),
        "peak_rss_mib": max(peak - rss_before, 0) / 2**20,
    }


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    names = [spec.name for spec in list_networks()]
    parser = argparse.ArgumentParser(
        description="CPU forward time and peak memory of each network preset (Markdown table on stdout)."
    )
    parser.add_argument(
        "--presets",
        nargs="+",
        choices=names,
        default=names,
        metavar="NAME",
        help=f"presets to measure (default: all): {', '.join(names)}",
    )
    parser.add_argument(
        "--dims", nargs="+", type=int, choices=(2, 3), default=[2, 3], help="spatial dims to measure (default: 2 3)"
    )
    parser.add_argument(
        "--dtypes",
        nargs="+",
        choices=DTYPES,
        default=list(DTYPES),
        help="precisions: fp32 and/or bf16 autocast (default: both)",
    )
    parser.add_argument("--size-2d", type=int, default=256, help="2D input edge in pixels (default: 256)")
    parser.add_argument("--size-3d", type=int, default=64, help="3D input edge in voxels (default: 64)")
    parser.add_argument("--repeats", type=int, default=3, help="timed forwards per case (default: 3)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed forwards per case (default: 1)")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default: 1)")
    parser.add_argument(
        "--in-process",
        action="store_true",
        help="run every case in this process (faster; the memory column is then unreliable)",
    )
    parser.add_argument("--child", nargs=3, metavar=("NAME", "DIMS", "DTYPE"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.warmup < 0 or args.threads < 1 or args.size_2d < 1 or args.size_3d < 1:
        parser.error("--repeats, --threads and the sizes must be >= 1, --warmup >= 0")
    return args


def _run_case(args: argparse.Namespace, name: str, dims: int, dtype: str, size: int) -> dict:
    if args.in_process:
        return measure(name, dims, dtype, size, repeats=args.repeats, warmup=args.warmup)
    command = [
        sys.executable, __file__, "--child", name, str(dims), dtype, "--threads", str(args.threads),
        "--repeats", str(args.repeats), "--warmup", str(args.warmup),
        "--size-2d", str(args.size_2d), "--size-3d", str(args.size_3d),
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(result.stderr or f"exit status {result.returncode}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print the table.

    Args:
        argv: command-line arguments (``sys.argv[1:]`` when None).

    Returns:
        The exit status, 0.
    """
    args = _parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.child:  # one isolated case: print its result as JSON
        name, dims, dtype = args.child[0], int(args.child[1]), args.child[2]
        size = args.size_2d if dims == 2 else args.size_3d
        print(json.dumps(measure(name, dims, dtype, size, repeats=args.repeats, warmup=args.warmup)))
        return 0
    print(f"torch {torch.__version__}, {args.threads} thread(s), batch 1, channels_last, inference_mode\n")
    print("| preset | dims | input | dtype | params | weights MiB | forward ms (median) | peak RSS Δ MiB |")
    print("|---|---|---|---|---:|---:|---:|---:|")
    for name in args.presets:
        for dims in args.dims:
            size = args.size_2d if dims == 2 else args.size_3d
            shape = "×".join([str(size)] * dims)
            for dtype in args.dtypes:
                try:
                    r = _run_case(args, name, dims, dtype, size)
                except (RuntimeError, MemoryError) as err:  # e.g. out of memory for a paper preset in 3D
                    reason = str(err).strip().splitlines()[-1][:60] if str(err).strip() else type(err).__name__
                    print(f"| {name} | {dims}D | {shape} | {dtype} | – | – | failed: {reason} | – |", flush=True)
                    continue
                print(
                    f"| {name} | {dims}D | {shape} | {dtype} | {r['params']:,} | {r['weights_mib']:.1f} | "
                    f"{r['median_ms']:.1f} | {r['peak_rss_mib']:.0f} |",
                    flush=True,
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
