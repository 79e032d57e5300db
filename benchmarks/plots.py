"""PNG figures of a results dict (matplotlib, Agg: no display needed)."""

from __future__ import annotations

from pathlib import Path


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _bars(ax, names: list[str], summaries: list[dict], scale: float = 1.0) -> None:
    """Medians as bars, min..max as error bars, the median written on each bar."""
    medians = [s["median"] * scale for s in summaries]
    low = [(s["median"] - s["min"]) * scale for s in summaries]
    high = [(s["max"] - s["median"]) * scale for s in summaries]
    colors = ["tab:blue" if i == 0 else "tab:gray" for i in range(len(names))]
    ax.bar(names, medians, yerr=[low, high], capsize=4, color=colors)
    for i, value in enumerate(medians):
        label = f"{value:.0f}" if value >= 100 else f"{value:.3g}"
        ax.annotate(label, (i, value), ha="center", va="bottom", fontsize=8)
    ax.tick_params(axis="x", labelrotation=30)
    for label in ax.get_xticklabels():
        label.set_horizontalalignment("right")


def throughput(results: dict, path: Path) -> None:
    plt = _pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(17, 5.5), gridspec_kw={"width_ratios": [3, 1, 1]})
    systems = results["systems"]
    _bars(axes[0], list(systems), [s["output_tok_s"] for s in systems.values()])
    axes[0].set_title("output tokens/s (median, min-max over runs)")
    d = results["decode_step"]
    names, values = ["engine step", "linear only"], [d["engine_step_s"], d["linear_only_s"]]
    if "linear_engine_only_s" in d:
        names.append("linear, as the engine")
        values.append(d["linear_engine_only_s"])
    _bars(axes[1], names, values, 1e3)
    axes[1].set_title(f"decode @ batch {results['config']['decode_batch']}: ms (x{d['ratio']:.2f})")
    p = results["prefix_cache"]
    _bars(axes[2], ["1st request", "2nd (cached)"], [p["ttft_first_s"], p["ttft_second_s"]], 1e3)
    axes[2].set_title(f"TTFT, shared {results['config']['prefix_len']}-token prefix: ms")
    fig.suptitle(f"bench throughput: {Path(results['model']['dir']).name}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _cdf(ax, samples: dict[str, list[float]], title: str, scale: float = 1e3) -> None:
    for name, values in samples.items():
        if not values:
            continue
        ordered = sorted(v * scale for v in values)
        ax.plot(ordered, [(i + 1) / len(ordered) for i in range(len(ordered))], label=name)
    ax.set_title(title)
    ax.set_ylabel("fraction")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)


def serve(results: dict, path: Path) -> None:
    plt = _pyplot()
    fig, axes = plt.subplots(1, 4, figsize=(20, 5))
    systems = results["systems"]
    _bars(axes[0], list(systems), [s["output_tok_s"] for s in systems.values()])
    axes[0].set_title("output tokens/s (median, min-max over runs)")
    raw = {name: s["raw"] for name, s in systems.items()}
    _cdf(axes[1], {n: r["ttft_s"] for n, r in raw.items()}, "TTFT (ms)")
    _cdf(axes[2], {n: r["itl_s"] for n, r in raw.items()}, "inter-token latency (ms)")
    _cdf(axes[3], {n: r["e2e_s"] for n, r in raw.items()}, "end-to-end latency (ms)")
    fig.suptitle(f"bench serve: {results['model']}, {results['load']}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
