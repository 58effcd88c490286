"""The paper's own numbers (TASSN, WACV 2021), written once: what our tables and plots are compared with."""

from __future__ import annotations

#: the columns of :data:`TABLE1`, in the paper's order.
TABLE1_METRICS: tuple[str, ...] = ("auc_0_50", "auc_20_50", "epe_mm")

#: Table 1 (3D hand pose on the target datasets): ``{dataset: {setting: (AUC 0–50, AUC 20–50, EPE mm)}}``, the
#: settings in the paper's row order and named as :meth:`tassn.stages.Stage3.variant` names them.
TABLE1: dict[str, dict[str, tuple[float, float, float]]] = {
    "stb": {
        "TASSN w/o L_c": (0.541, 0.735, 24.2),
        "TASSN w/o L_c^m": (0.754, 0.936, 13.6),
        "TASSN": (0.773, 0.972, 11.3),
    },
    "mhp": {
        "TASSN w/o L_c": (0.492, 0.677, 28.2),
        "TASSN w/o L_c^m": (0.665, 0.870, 17.5),
        "TASSN": (0.689, 0.892, 16.2),
    },
}
