r"""The Kalman filter of the hierarchical model as one PyTensor Op with its own gradient.

State per series (level :math:`L`, growth deviation :math:`g`, level deviation
:math:`u`), transition over :math:`\Delta t` years the exact one of the
continuous-time processes (see :mod:`models.hierarchical`):

.. math::

    e = e^{-\theta\Delta t},\quad c = (1-e)/\theta,\quad \phi = \rho^{\Delta t} \\
    L' = L + c\,g,\quad g' = e\,g,\quad u' = \phi\,u \\
    Q_{LL} = s^2\,\big(2(\theta\Delta t + e - 1)/\theta^2 - c^2\big),\quad
    Q_{Lg} = s^2 c (1-e),\quad Q_{gg} = s^2 (1-e^2),\quad Q_{uu} = v (1-\phi^2)

observed :math:`y_k = b_k + L + u + \varepsilon_k`.  Output per series: the
log-likelihood of its readings and the filtered level after the last one.

Why an Op and not ``pytensor.scan``: the scan made the sampler's every gradient cost
≈ 1 ms for 135 series (two Scan ops took 63 % of the run time) and its C code took
≈ 90 s to compile.  Here the forward pass and a hand-written reverse pass are numba
kernels that loop over each series' actual readings (no padding); the gradient is
checked against PyTensor's automatic derivative of :func:`scan_filter` (the reference
implementation, kept for that test) in ``tests/test_models.py``.  The Op runs in
PyMC's default backend (``perform`` calls the kernels) and in the numba backend that
nutpie compiles (registered with ``numba_funcify``), so it does not tie the model to
one sampler.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytensor.tensor as pt
from numba import njit
from pytensor.gradient import DisconnectedType
from pytensor.graph.basic import Apply
from pytensor.graph.op import Op

LOG2PI = float(np.log(2 * np.pi))


@njit(inline="always", fastmath=False)
def _transition(th, q2, rho, dt):
    """The transition over dt years: x = θ dt, e = e^{−x}, em1 = e^{−x} − 1,
    c = (1 − e)/θ, φ = ρ^dt, uLL = Q_LL / s², and Q_Lg, Q_gg (see the module docstring).
    One place for both passes, so the reverse pass recomputes exactly what the forward
    pass used."""
    x = th * dt
    e = np.exp(-x)
    em1 = np.expm1(-x)
    c = -em1 / th
    phi = rho ** dt
    uLL = 2 * (x + em1) / th ** 2 - c * c
    return x, e, em1, c, phi, uLL, q2 * c * (1 - e), q2 * (1 - e * e)


@njit(cache=True, fastmath=False)
def _forward(Y, DT, N, SD, base, rho, vstat, s2, theta, a_var):
    """ll (S,), final level mean (S,) and the state before every step (S, K, 9), which
    the reverse pass reads instead of running the filter again.  Rows past a series'
    N readings are left unset: nothing reads them."""
    S, K = Y.shape
    ll = np.zeros(S)
    mlast = np.zeros(S)
    saved = np.empty((S, K, 9))
    for s in range(S):
        mL = 0.0; mg = 0.0; mu = 0.0
        PLL = a_var; PLg = 0.0; Pgg = s2[s]; PLu = 0.0; Pgu = 0.0; Puu = vstat[s]
        th = theta[s]; q2 = s2[s]; vs = vstat[s]
        acc = 0.0
        # The transition depends on the series only through dt, and most series are
        # read once a year: recompute its exp/expm1/pow only when dt changes (the same
        # expressions as before, so the same bits).
        last_dt = np.nan
        x = 0.0; e = 0.0; em1 = 0.0; c = 0.0; phi = 0.0; uLL = 0.0; qLL = 0.0; qLg = 0.0; qgg = 0.0
        for k in range(N[s]):
            st = saved[s, k]
            st[0] = mL; st[1] = mg; st[2] = mu; st[3] = PLL; st[4] = PLg
            st[5] = Pgg; st[6] = PLu; st[7] = Pgu; st[8] = Puu
            dt = DT[s, k]
            if dt != last_dt:
                x, e, em1, c, phi, uLL, qLg, qgg = _transition(th, q2, rho, dt)
                qLL = q2 * uLL
                last_dt = dt
            pL = mL + c * mg; pg = e * mg; pu = phi * mu
            ALL = PLL + 2 * c * PLg + c * c * Pgg + qLL
            ALg = e * (PLg + c * Pgg) + qLg
            Agg = e * e * Pgg + qgg
            ALu = phi * (PLu + c * Pgu)
            Agu = e * phi * Pgu
            Auu = phi * phi * Puu + vs * (1 - phi * phi)
            F = ALL + 2 * ALu + Auu + SD[s, k] ** 2
            v = Y[s, k] - base[s, k] - pL - pu
            acc += -0.5 * (LOG2PI + np.log(F) + v * v / F)
            hL = ALL + ALu; hg = ALg + Agu; hu = ALu + Auu
            mL = pL + hL * v / F; mg = pg + hg * v / F; mu = pu + hu * v / F
            PLL = ALL - hL * hL / F; PLg = ALg - hL * hg / F; Pgg = Agg - hg * hg / F
            PLu = ALu - hL * hu / F; Pgu = Agu - hg * hu / F; Puu = Auu - hu * hu / F
        ll[s] = acc
        mlast[s] = mL
    return ll, mlast, saved


@njit(cache=True, fastmath=False)
def _backward(Y, DT, N, SD, base, rho, vstat, s2, theta, saved, g_ll, g_m):
    """Reverse pass: gradients of Σ g_ll·ll + Σ g_m·mlast with respect to base, ρ,
    vstat, s2 and θ, from the states the forward pass saved (each step's intermediates
    are recomputed from them)."""
    S, K = Y.shape
    gb = np.zeros((S, K)); grho = 0.0
    gv = np.zeros(S); gs2 = np.zeros(S); gth = np.zeros(S)
    for s in range(S):
        th = theta[s]; q2 = s2[s]; vs = vstat[s]
        bll = g_ll[s]
        bmL = g_m[s]; bmg = 0.0; bmu = 0.0
        bPLL = 0.0; bPLg = 0.0; bPgg = 0.0; bPLu = 0.0; bPgu = 0.0; bPuu = 0.0
        last_dt = np.nan   # as in _forward: transition terms recomputed only when dt changes
        x = 0.0; e = 0.0; em1 = 0.0; c = 0.0; phi = 0.0; uLL = 0.0; qLL = 0.0; qLg = 0.0; qgg = 0.0
        for k in range(N[s] - 1, -1, -1):
            st = saved[s, k]
            mL = st[0]; mg = st[1]; mu = st[2]; PLL = st[3]; PLg = st[4]
            Pgg = st[5]; PLu = st[6]; Pgu = st[7]; Puu = st[8]
            dt = DT[s, k]
            if dt != last_dt:
                x, e, em1, c, phi, uLL, qLg, qgg = _transition(th, q2, rho, dt)
                qLL = q2 * uLL
                last_dt = dt
            pL = mL + c * mg; pu = phi * mu
            ALL = PLL + 2 * c * PLg + c * c * Pgg + qLL
            ALg = e * (PLg + c * Pgg) + qLg
            Agg = e * e * Pgg + qgg
            ALu = phi * (PLu + c * Pgu)
            Agu = e * phi * Pgu
            Auu = phi * phi * Puu + vs * (1 - phi * phi)
            F = ALL + 2 * ALu + Auu + SD[s, k] ** 2
            v = Y[s, k] - base[s, k] - pL - pu
            hL = ALL + ALu; hg = ALg + Agu; hu = ALu + Auu
            # --- update step: m' = p + h v / F, P' = A - h hᵀ / F, ll += ...
            sm = bmL * hL + bmg * hg + bmu * hu
            bv = sm / F - bll * v / F
            bF = (-sm * v / F ** 2
                  + (bPLL * hL * hL + bPLg * hL * hg + bPgg * hg * hg + bPLu * hL * hu
                     + bPgu * hg * hu + bPuu * hu * hu) / F ** 2
                  - 0.5 * bll * (1 / F - v * v / F ** 2))
            bhL = bmL * v / F - (2 * bPLL * hL + bPLg * hg + bPLu * hu) / F
            bhg = bmg * v / F - (bPLg * hL + 2 * bPgg * hg + bPgu * hu) / F
            bhu = bmu * v / F - (bPLu * hL + bPgu * hg + 2 * bPuu * hu) / F
            bpL = bmL - bv; bpg = bmg; bpu = bmu - bv
            gb[s, k] -= bv
            bALL = bPLL + bhL + bF
            bALg = bPLg + bhg
            bAgg = bPgg
            bALu = bPLu + bhL + bhu + 2 * bF
            bAgu = bPgu + bhg
            bAuu = bPuu + bhu + bF
            # --- predict step, back to the state before it and the parameters
            bc = 0.0; be = 0.0; bphi = 0.0; bx = 0.0; bem1 = 0.0
            nmL = bpL
            nmg = c * bpL + e * bpg
            bc += mg * bpL
            be += mg * bpg
            nmu = phi * bpu
            bphi += mu * bpu
            nPLL = bALL
            nPLg = 2 * c * bALL + e * bALg
            nPgg = c * c * bALL + e * c * bALg + e * e * bAgg
            bc += (2 * PLg + 2 * c * Pgg) * bALL + e * Pgg * bALg + phi * Pgu * bALu
            be += (PLg + c * Pgg) * bALg + 2 * e * Pgg * bAgg + phi * Pgu * bAgu
            nPLu = phi * bALu
            nPgu = phi * c * bALu + e * phi * bAgu
            bphi += (PLu + c * Pgu) * bALu + e * Pgu * bAgu + 2 * phi * (Puu - vs) * bAuu
            nPuu = phi * phi * bAuu
            gv[s] += (1 - phi * phi) * bAuu
            # process noise: qLL = s2 (2 (x + em1)/θ² − c²), qLg = s2 c (1 − e), qgg = s2 (1 − e²)
            gs2[s] += (bALL * uLL + bALg * c * (1 - e) + bAgg * (1 - e * e))
            bx += bALL * q2 * 2 / th ** 2
            bem1 += bALL * q2 * 2 / th ** 2
            gth[s] += bALL * q2 * (-4 * (x + em1) / th ** 3)
            bc += bALL * q2 * (-2 * c) + bALg * q2 * (1 - e)
            be += -bALg * q2 * c - 2 * e * q2 * bAgg
            # c = −em1/θ, em1 = e^{−x} − 1, e = e^{−x}, x = θ dt, φ = ρ^dt
            bem1 += -bc / th
            gth[s] += bc * em1 / th ** 2
            bx += -e * bem1 - e * be
            gth[s] += dt * bx
            if dt != 0.0:
                grho += dt * phi / rho * bphi
            bmL = nmL; bmg = nmg; bmu = nmu
            bPLL = nPLL; bPLg = nPLg; bPgg = nPgg; bPLu = nPLu; bPgu = nPgu; bPuu = nPuu
        # initial state: Pgg = s2, Puu = vstat
        gs2[s] += bPgg
        gv[s] += bPuu
    return gb, grho, gv, gs2, gth


class KalmanFilter(Op):
    """(Y, DT, N, SD, base, ρ, vstat, s2, θ) → (log-likelihood per series, filtered
    level after the last reading, the filter's states).  Y, DT, SD, base are (S, K)
    with each series' readings first; N (S,) counts them.  ``a_var`` is the prior
    variance of the level.

    The third output (S, K, 9) is what the reverse pass reads: handing it over instead
    of running the filter again inside the gradient took one of the three passes out
    of every logp + gradient.  It carries no gradient of its own (use the first two)."""

    __props__ = ("a_var",)

    def __init__(self, a_var: float):
        self.a_var = float(a_var)

    def make_node(self, Y, DT, N, SD, base, rho, vstat, s2, theta):
        ins = [pt.as_tensor_variable(Y, dtype="float64"), pt.as_tensor_variable(DT, dtype="float64"),
               pt.as_tensor_variable(N, dtype="int64"), pt.as_tensor_variable(SD, dtype="float64"),
               pt.as_tensor_variable(base, dtype="float64"), pt.as_tensor_variable(rho, dtype="float64"),
               pt.as_tensor_variable(vstat, dtype="float64"), pt.as_tensor_variable(s2, dtype="float64"),
               pt.as_tensor_variable(theta, dtype="float64")]
        return Apply(self, ins, [pt.dvector(), pt.dvector(), pt.dtensor3()])

    def perform(self, node, inputs, outputs):
        Y, DT, N, SD, base, rho, vstat, s2, theta = inputs
        ll, m, saved = _forward(Y, DT, N, SD, base, float(rho), vstat, s2, theta, self.a_var)
        outputs[0][0] = ll
        outputs[1][0] = m
        outputs[2][0] = saved

    def connection_pattern(self, node):
        return [[False, False, False]] * 4 + [[True, True, False]] * 5

    def L_op(self, inputs, outputs, output_grads):
        g_ll, g_m = output_grads[:2]
        S = inputs[0].shape[0]
        g_ll = pt.zeros(S) if isinstance(g_ll.type, DisconnectedType) else g_ll
        g_m = pt.zeros(S) if isinstance(g_m.type, DisconnectedType) else g_m
        gb, grho, gv, gs2, gth = KalmanFilterGrad()(*inputs, outputs[2], g_ll, g_m)
        return [DisconnectedType()()] * 4 + [gb, grho, gv, gs2, gth]

    def infer_shape(self, fgraph, node, shapes):
        S, K = shapes[0]
        return [(S,), (S,), (S, K, 9)]


class KalmanFilterGrad(Op):
    """The reverse pass of :class:`KalmanFilter` over the states it saved."""

    __props__ = ()

    def make_node(self, *inputs):
        ins = [pt.as_tensor_variable(x) for x in inputs]
        return Apply(self, ins, [pt.dmatrix(), pt.dscalar(), pt.dvector(), pt.dvector(), pt.dvector()])

    def perform(self, node, inputs, outputs):
        Y, DT, N, SD, base, rho, vstat, s2, theta, saved, g_ll, g_m = inputs
        res = _backward(Y, DT, N, SD, base, float(rho), vstat, s2, theta, saved, g_ll, g_m)
        for out, r in zip(outputs, res):
            out[0] = np.asarray(r, dtype=float)


def _register_numba():
    """Let nutpie's numba backend compile the Op (the same kernels, no Python call)."""
    try:
        from pytensor.link.numba.dispatch.basic import default_hash_key_from_props, register_funcify_and_cache_key
    except ImportError:  # pragma: no cover — PyTensor without its numba backend (or an older one)
        return

    # A cache key lets PyTensor store the whole compiled graph in its numba disk cache;
    # without one a single uncacheable Op makes every fit recompile the graph (≈ 20 s).
    # The key covers the Op's props and this file's source, so an edited kernel is
    # never served from a stale cache entry.
    source = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:16]

    @register_funcify_and_cache_key(KalmanFilter)
    def _funcify_filter(op, node=None, **kwargs):
        a_var = op.a_var

        @njit
        def kalman_filter(Y, DT, N, SD, base, rho, vstat, s2, theta):
            return _forward(Y, DT, N, SD, base, rho.item(), vstat, s2, theta, a_var)

        return kalman_filter, default_hash_key_from_props(op, kernel=source)

    @register_funcify_and_cache_key(KalmanFilterGrad)
    def _funcify_grad(op, node=None, **kwargs):
        @njit
        def kalman_filter_grad(Y, DT, N, SD, base, rho, vstat, s2, theta, saved, g_ll, g_m):
            gb, grho, gv, gs2, gth = _backward(Y, DT, N, SD, base, rho.item(), vstat, s2, theta, saved,
                                               g_ll, g_m)
            return gb, np.asarray(grho), gv, gs2, gth

        return kalman_filter_grad, default_hash_key_from_props(op, kernel=source)


_register_numba()


def scan_filter(Y, DT, M, SD, base, rho, vstat, s2, theta, a_var):
    """The same filter as a ``pytensor.scan`` over reading positions (hier-4's first
    implementation).  Kept as the reference the Op's value and gradient are tested
    against; not used by the model."""
    import pytensor

    def step(on, dt_k, y_k, sd_k, base_k, mL, mg, mu_, PLL, PLg, Pgg, PLu, Pgu, Puu, ll, rho, vstat, s2, theta):
        e = pt.exp(-theta * dt_k)
        em1 = pt.expm1(-theta * dt_k)
        c = -em1 / theta
        phi = rho ** dt_k
        qLL = s2 * (2 * (theta * dt_k + em1) / theta ** 2 - c ** 2)
        qLg = s2 * c * (1 - e)
        qgg = s2 * (1 - e ** 2)
        mL, mg, mu_ = mL + c * mg, e * mg, phi * mu_
        PLL, PLg, Pgg, PLu, Pgu, Puu = (PLL + 2 * c * PLg + c ** 2 * Pgg + qLL, e * (PLg + c * Pgg) + qLg,
                                        e ** 2 * Pgg + qgg, phi * (PLu + c * Pgu), e * phi * Pgu,
                                        phi ** 2 * Puu + vstat * (1 - phi ** 2))
        F = PLL + 2 * PLu + Puu + sd_k ** 2
        v = y_k - base_k - mL - mu_
        ll = ll + on * (-0.5 * (np.log(2 * np.pi) + pt.log(F) + v ** 2 / F))
        kL, kg, ku = on * (PLL + PLu) / F, on * (PLg + Pgu) / F, on * (PLu + Puu) / F
        return (mL + kL * v, mg + kg * v, mu_ + ku * v,
                PLL - kL * kL * F, PLg - kL * kg * F, Pgg - kg * kg * F,
                PLu - kL * ku * F, Pgu - kg * ku * F, Puu - ku * ku * F, ll)

    S = Y.shape[0]
    zero = pt.zeros(S, dtype="float64")
    outs = pytensor.scan(step, sequences=[pt.as_tensor(M.T.astype(float)), pt.as_tensor(DT.T), pt.as_tensor(Y.T),
                                          pt.as_tensor(SD.T), base.T],
                         outputs_info=[zero, zero, zero, zero + np.float64(a_var), zero, s2, zero, zero, vstat, zero],
                         non_sequences=[rho, vstat, s2, theta], return_updates=False)
    return outs[9][-1], outs[0][-1]
