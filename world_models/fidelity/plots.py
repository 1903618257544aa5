"""Plots of the fidelity report."""

from __future__ import annotations

import pathlib

import numpy as np

#: y-axis labels (with units) of the conditional statistics: mean of the statistic per condition
COND_YLABELS = {
    "abs_ret_acf": "autocorrelation of |1-bar mid change| (dimensionless)",
    "spread_by_vol": "mean spread / median spread (dimensionless)",
    "spread_by_tod": "mean spread / median spread (dimensionless)",
    "impact_curve": "mean 1-bar mid change (units of sigma_bar)",
}
#: x-axis labels (with units) of the conditions
COND_XLABELS = {
    "abs_ret_acf": "lag (bars)",
    "spread_by_vol": "realised-volatility tercile (0 low, 2 high)",
    "spread_by_tod": "time of day (hours, exchange time)",
    "impact_curve": "signed aggressive volume bin (units of the mean bar volume)",
}


def axis_label(name: str) -> str:
    """The x-axis label of a distribution statistic: its description, which carries its units."""
    from lobworld.world_models.fidelity.statistics import STATISTICS

    desc = {st.name: st.description for st in STATISTICS}.get(name)
    return f"{name}: {desc}" if desc else name


def plot_statistics(rep: dict, out_dir, prefix: str = "fidelity_") -> list[pathlib.Path]:
    """One PNG per statistic: histograms (real vs simulators) or, for conditional statistics, mean per condition."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = pathlib.Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    colours = {"real": "black", "learned": "tab:blue", "parametric": "tab:orange"}
    written = []
    for name, data in rep["_plot"].items():
        fig, ax = plt.subplots(figsize=(6, 4))
        real_v = data["real"][0]
        if data["real"][1] is None:
            lo, hi = np.quantile(real_v, [0.005, 0.995])
            span = hi - lo if hi > lo else 1.0
            bins = np.linspace(lo - 0.1 * span, hi + 0.1 * span, 41)
            for src, o in data.items():
                if o is None:
                    continue
                ax.hist(np.clip(o[0], bins[0], bins[-1]), bins=bins, density=True, histtype="step", lw=1.6,
                        color=colours.get(src), label=src)
            ax.set_xlabel(axis_label(name), fontsize=8)
            ax.set_ylabel("density (per unit of the x axis)")
        else:
            for src, o in data.items():
                if o is None or o[1] is None:
                    continue
                ks = np.unique(data["real"][1])
                means = [np.mean(o[0][o[1] == k]) if np.any(o[1] == k) else np.nan for k in ks]
                xk = ks / 2.0 if name == "spread_by_tod" else ks
                ax.plot(xk, means, marker="o", color=colours.get(src), label=src)
            ax.set_xlabel(COND_XLABELS.get(name, "condition"), fontsize=8)
            ax.set_ylabel(COND_YLABELS.get(name, f"mean {name}"), fontsize=8)
        ax.set_title(f"{name}: real (held-out) vs simulated")
        ax.legend(fontsize=8)
        fig.tight_layout()
        p = out_dir / f"{prefix}{name}.png"
        fig.savefig(p, dpi=90)
        plt.close(fig)
        written.append(p)
    imp = rep.get("impact")
    if imp and imp.get("delta") is not None:
        x = np.asarray(imp["sizes_q_over_v"])
        y = np.asarray(imp["mean_impact_over_sigma"])
        ok = y > 0
        fig, ax = plt.subplots(figsize=(6, 4))
        ax.loglog(x[ok], y[ok], "o", color="tab:blue", label="learned: mean peak impact (CRN)")
        xx = np.geomspace(x.min(), x.max(), 50)
        ax.loglog(xx, imp["Y"] * xx ** imp["delta"], color="tab:blue",
                  label=f"fit delta = {imp['delta']:.2f} [{imp['delta_ci'][0]:.2f}, {imp['delta_ci'][1]:.2f}]")
        ax.loglog(xx, y[ok][0] * (xx / x[ok][0]) ** 0.5, "--", color="gray", label="slope 1/2 (square-root law)")
        ax.set_xlabel("order size Q / daily volume V_day (dimensionless)")
        ax.set_ylabel("peak impact I / daily volatility sigma_day")
        ax.set_title("Simulated metaorders through the learned market")
        ax.legend(fontsize=8)
        fig.tight_layout()
        p = out_dir / f"{prefix}impact_exponent.png"
        fig.savefig(p, dpi=90)
        plt.close(fig)
        written.append(p)
    return written
