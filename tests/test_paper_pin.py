"""Paper mode is pinned bit for bit: its per-epoch results and final test logits equal values recorded before issue 26.

Issue 26 changed the honest heads (selection by inner grouped CV, refit on all
training rows, a searched MLP recipe). Paper mode reproduces the authors'
code epoch for epoch and must not move at all: these cases run it on small
deterministic inputs (in-memory arrays and a real store) and compare every
per-epoch number (train loss, test accuracy, macro-F1, ROC-AUC), the
best-accuracy / best-F1 selections and the final model's test logits with
the values recorded from the code as it was before that change (commit
3795f98, torch 2.14.1 on x86-64, one torch thread), as exact floats.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

#: name → (fusion, n_classes, epochs, seed, lr, output_size)
CASES = {
    "early-3class": ("early", 3, 6, 0, None, None),
    "late-binary-bce": ("late", 2, 5, 1, 3e-3, None),
    "text-binary-2logits": ("text", 2, 4, 2, None, 2),
}


def _arrays(n_classes: int, seed: int):
    rng = np.random.default_rng(100 + seed)
    n = 90
    y = rng.integers(0, n_classes, n)
    y[:n_classes] = np.arange(n_classes)
    xi = (rng.standard_normal((n, 7)) + y[:, None] * 0.6).astype(np.float32)
    xt = (rng.standard_normal((n, 5)) - (y == 1)[:, None] * 0.8).astype(np.float32)
    split = np.where(np.arange(n) % 4 == 3, "test", "train")
    return xi, xt, y.astype(str), split


def observe(name: str) -> dict[str, Any]:
    """Per-epoch results, selections and final test logits of one case (arrays path)."""
    from embedstore.trainers.fit_loop import predict
    from embedstore.trainers.loader import ArraySource
    from embedstore.trainers.options import HeadOptions
    from embedstore.trainers.seed_runs import fit_head, protocol_from
    from embedstore.trainers.train import train_arrays

    fusion, k, epochs, seed, lr, output_size = CASES[name]
    xi, xt, y, split = _arrays(k, seed)
    res = train_arrays(xi, xt, y, split, fusion=fusion, mode="paper", epochs=epochs, seed=seed, lr=lr,
                       output_size=output_size)
    run = res.runs[0]
    out: dict[str, Any] = {f"history.{key}": [h[key] for h in run.history]
                           for key in ("train_loss", "accuracy", "macro_f1", "roc_auc_ovr")}
    out["selection"] = [run.selection["best_accuracy"]["epoch"], run.selection["best_accuracy"]["accuracy"],
                        run.selection["best_accuracy"]["macro_f1"], run.selection["best_f1"]["epoch"],
                        run.selection["best_f1"]["macro_f1"]]
    out["metrics"] = [run.metrics["accuracy"], run.metrics["macro_f1"], run.metrics["roc_auc_ovr"]]
    src = ArraySource(xi, xt, y, split)
    proto = protocol_from(fusion, "paper", epochs, None, 64, lr)
    spec = HeadOptions(output_size=output_size).spec(fusion, len(src.classes))
    fitted = fit_head(src, spec, proto, seed)
    logits, _ = predict(fitted.model, src, "test", 64)
    out["final_test_logits"] = [float(v) for v in np.asarray(logits, dtype=np.float64).ravel()]
    return out


def observe_store(tmp_path) -> dict[str, Any]:
    """The same through the store path: synthetic vectors in a real store, ``train(..., mode='paper')``."""
    from embedstore import Store
    from embedstore.trainers.synthetic_vectors import write_synthetic
    from embedstore.trainers.train import train

    store = Store(tmp_path / "store")
    info = write_synthetic(store, "pin", n=80, image_dim=6, text_dim=4, n_classes=3, signal=0.7, seed=4)
    res = train(store, "pin", image_model=info["image_model"], text_model=info["text_model"], fusion="early",
                mode="paper", epochs=5, seed=3, record=False)
    run = res.runs[0]
    return {f"history.{key}": [h[key] for h in run.history] for key in ("train_loss", "accuracy", "macro_f1")}


RECORDED: dict[str, dict[str, list]] = {
    'early-3class': {
        'history.train_loss': [
            1.2161794760647942, 1.1232431846506454, 1.0508321208112381, 0.982286628554849, 0.9161299291779014,
            0.8687848413691801],
        'history.accuracy': [
            0.36363636363636365, 0.2727272727272727, 0.22727272727272727, 0.3181818181818182, 0.3181818181818182,
            0.45454545454545453],
        'history.macro_f1': [
            0.30952380952380953, 0.25, 0.2111111111111111, 0.2949795302736479, 0.2949795302736479, 0.4284750337381917],
        'history.roc_auc_ovr': [
            0.4225957049486461, 0.49871615312791784, 0.5483426704014939, 0.6027777777777779, 0.6661998132586368,
            0.7217787114845938],
        'selection': [
            6, 0.45454545454545453, 0.4284750337381917, 6, 0.4284750337381917],
        'metrics': [
            0.45454545454545453, 0.4284750337381917, 0.7217787114845938],
        'final_test_logits': [
            0.11946026980876923, -0.4014385938644409, 0.09110406786203384, 0.08729696273803711, -0.2959822416305542,
            -0.3012435734272003, 0.11850982904434204, -0.23008805513381958, 0.04636356234550476, 0.08562014997005463,
            0.19505968689918518, 0.23645451664924622, 0.3317415714263916, -0.5262534618377686, 0.2674143314361572,
            0.265845388174057, -0.1848258078098297, -0.30606526136398315, 0.16540876030921936, 0.019773533567786217,
            -0.1400965452194214, -0.23071956634521484, -0.3126886487007141, -0.3948814570903778, 0.03033629059791565,
            -0.2766822576522827, -0.1775493025779724, 0.10618297755718231, 0.42521852254867554, -0.6180644631385803,
            -0.04575587809085846, 0.14775095880031586, -0.1851893961429596, 0.6853008270263672, -0.34455254673957825,
            -0.034928612411022186, -0.31168466806411743, 0.3944677710533142, 0.01502249389886856,
            -0.058250777423381805, -0.1843479871749878, 0.18721821904182434, 0.16929954290390015, -0.5344072580337524,
            -0.08512677997350693, 0.42526525259017944, -0.19728273153305054, -0.03354179114103317,
            -0.3070223033428192, -0.10637546330690384, 0.03146394342184067, -0.1517806202173233, -0.14297983050346375,
            0.09566131979227066, -0.03815075010061264, -0.029458114877343178, 0.19175752997398376,
            -0.12211614847183228, -0.4515876770019531, 0.22232073545455933, -0.1598673164844513, -0.5332121849060059,
            -0.5593122243881226, 0.2804557681083679, -0.4913848638534546, 0.2838006615638733],
    },
    'late-binary-bce': {
        'history.train_loss': [
            0.7522105644730961, 0.6467791655484367, 0.5748675500645357, 0.5098550635225633, 0.4674557166941026],
        'history.accuracy': [
            0.7272727272727273, 0.8636363636363636, 0.8636363636363636, 0.8636363636363636, 0.8636363636363636],
        'history.macro_f1': [
            0.7272727272727273, 0.8610526315789473, 0.8610526315789473, 0.8562091503267973, 0.8562091503267973],
        'history.roc_auc_ovr': [
            0.811965811965812, 0.8803418803418803, 0.9316239316239316, 0.9658119658119658, 0.9658119658119658],
        'selection': [
            2, 0.8636363636363636, 0.8610526315789473, 2, 0.8610526315789473],
        'metrics': [
            0.8636363636363636, 0.8610526315789473, 0.8803418803418803],
        'final_test_logits': [
            -0.5038045644760132, 0.08294941484928131, 0.8833231925964355, -1.6273117065429688, -0.6980897188186646,
            0.4976603090763092, 0.2933538556098938, 0.17887277901172638, -0.26809969544410706, -0.7056038975715637,
            -0.8032336831092834, -0.3842793107032776, -0.10537930577993393, -0.8096382021903992, 0.6481720805168152,
            0.5393052697181702, -0.1586856245994568, -0.310220330953598, 0.44875457882881165, -0.2306486815214157,
            -0.3237382173538208, -0.6279656887054443],
    },
    'text-binary-2logits': {
        'history.train_loss': [
            0.8777537976994234, 0.8094364054062787, 0.7532243097529692, 0.6780445277690887],
        'history.accuracy': [
            0.36363636363636365, 0.5, 0.5454545454545454, 0.5],
        'history.macro_f1': [
            0.26666666666666666, 0.44367816091954027, 0.5299145299145299, 0.4989648033126294],
        'history.roc_auc_ovr': [
            0.3392857142857143, 0.41964285714285715, 0.48214285714285715, 0.5803571428571428],
        'selection': [
            3, 0.5454545454545454, 0.5299145299145299, 3, 0.5299145299145299],
        'metrics': [
            0.5454545454545454, 0.5299145299145299, 0.48214285714285715],
        'final_test_logits': [
            0.13400894403457642, 0.01632811687886715, -0.3243740499019623, 0.15003450214862823, 0.015852510929107666,
            0.060468487441539764, 0.08824290335178375, -0.03909548372030258, -0.22088389098644257,
            0.10201501101255417, -0.01906133070588112, 0.0019107963889837265, -0.25647488236427307,
            -0.062193892896175385, -0.03683619201183319, 0.23296333849430084, 0.10845762491226196,
            -0.32786187529563904, -0.024511244148015976, 0.30457502603530884, 0.18847958743572235,
            -0.5521959066390991, 0.1102282702922821, 0.03249776363372803, -0.049105897545814514, 0.056665606796741486,
            -0.10750812292098999, 0.10243571549654007, -0.12742696702480316, -0.2701987028121948, 0.03994128108024597,
            0.06425828486680984, -0.10328006744384766, -0.3368612825870514, 0.08564817905426025, 0.1379251927137375,
            -0.17861011624336243, 0.059883035719394684, 0.14500686526298523, 0.04234754294157028, -0.2701755166053772,
            -0.03883294761180878, 0.12324869632720947, -0.6587061285972595],
    },
}
RECORDED_STORE: dict[str, list] = {
    'history.train_loss': [
        1.1622713804244995, 1.0946977138519287, 1.0305709838867188, 0.9698461890220642, 0.9125453233718872],
    'history.accuracy': [
        0.45, 0.5, 0.5, 0.55, 0.6],
    'history.macro_f1': [
        0.4024844720496894, 0.4781144781144781, 0.4781144781144781, 0.5177133655394525, 0.5787878787878787],
}


@pytest.fixture
def recorded_threads():
    """torch's intra-op threads as when the values were recorded (2): the last bit of a float32 logit depends on
    how a matmul is split across threads, and an earlier test (or a machine with other cores) may leave another
    count."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("name", sorted(CASES))
def test_paper_mode_equals_the_values_recorded_before_issue_26(name, recorded_threads):
    assert observe(name) == RECORDED[name]


def test_paper_mode_through_the_store_equals_the_recorded_values(tmp_path):
    assert observe_store(tmp_path) == RECORDED_STORE
