"""The parser: every framework's step line, prefixes, \\r fragments, wrapped lines, NaN spellings."""

from __future__ import annotations

import math

import pytest

from mlops_cli.train.events import Record, Signal
from mlops_cli.train.parse import LogParser
from mlops_cli.train.values import to_float


def events(text: str | bytes, chunk: int | None = None) -> list:
    data = text.encode() if isinstance(text, str) else text
    p = LogParser("log")
    if chunk:
        for i in range(0, len(data), chunk):
            p.feed(data[i : i + chunk])
    else:
        p.feed(data)
    p.close()
    return p.drain()


def records(text, **kw) -> list[Record]:
    return [e for e in events(text, **kw) if isinstance(e, Record)]


def signals(text, **kw) -> list[Signal]:
    return [e for e in events(text, **kw) if isinstance(e, Signal)]


@pytest.mark.parametrize(
    "token, expect",
    [
        ("nan", "nan"),
        ("NaN", "nan"),
        ("-nan", "nan"),
        ("nan(ind)", "nan"),
        ("-nan(ind)", "nan"),
        ("NAN", "nan"),
        ("inf", "inf"),
        ("-inf", "-inf"),
        ("Infinity", "inf"),
        ("-Infinity", "-inf"),
        ("INF", "inf"),
        ("2.999E-04", 2.999e-04),
        ("1e-05", 1e-05),
        ("-0.0", 0.0),
        (".5", 0.5),
        ("7", 7.0),
    ],
)
def test_every_spelling_of_a_number(token, expect):
    v = to_float(token)
    if expect == "nan":
        assert math.isnan(v)
    elif expect in ("inf", "-inf"):
        assert v == float(expect)
    else:
        assert v == expect
    assert to_float("loss") is None and to_float("") is None


@pytest.mark.parametrize("spelling", ["nan", "NaN", "-nan(ind)", "inf", "Infinity", "-nan"])
def test_a_non_finite_loss_in_any_spelling_is_read(spelling):
    recs = records(f"epoch 1 iter 10 loss: 0.5 lr: 1e-4\nepoch 1 iter 20 loss: {spelling} lr: 1e-4\n")
    assert [r.step for r in recs] == [10, 20]
    assert not math.isfinite(recs[1].loss)


def test_hf_dict_takes_its_step_from_the_progress_bar_and_eval_the_train_step():
    log = (
        " 10%|█         | 10/100 [00:10<01:30,  1.00it/s]{'loss': 1.25, 'grad_norm': 0.5, 'learning_rate': 2e-05, 'epoch': 0.1}\n"
        "100%|██████████| 50/50 [00:04<00:00, 12.0it/s]\n"
        "{'eval_loss': 1.31, 'eval_runtime': 4.2, 'epoch': 0.1}\n"
    )
    recs = records(log)
    assert [(r.phase, r.step, r.loss, r.grad_norm, r.lr) for r in recs] == [
        ("train", 10, 1.25, 0.5, 2e-05),
        ("eval", 10, 1.31, None, None),
    ]
    assert recs[0].elapsed == "00:10"


def test_carriage_return_fragments_share_one_physical_line():
    bars = "".join(f"\r  {i}%|█| {i}/100 [00:0{i % 10}<00:10, 1.0it/s]" for i in range(1, 20))
    log = "first line\n" + bars + "{'loss': 0.5, 'grad_norm': 1.0, 'learning_rate': 1e-05, 'epoch': 0.2}\n"
    recs = records(log)
    assert len(recs) == 1 and recs[0].step == 19 and recs[0].where.line == 2


def test_rank_prefixes_are_kept():
    log = (
        "[rank3]: step 5 | loss nan | grad_norm nan\n"
        "i.pretrain/0 [default2]: step 5 | loss 0.5\n"
        "7: step 5 | loss 0.5\n"
        "[1,4]<stdout>: step 5 | loss 0.5\n"
    )
    assert [r.rank for r in records(log)] == [3, 2, 7, 4]


def test_megatron_drops_lm_loss_when_it_is_nan():
    ok = (
        " iteration      100/    1000 | consumed samples:     6400 | elapsed time per iteration (ms): 7613.1 | learning rate: 6.680E-06 |"
        " global batch size:    64 | lm loss: 7.334521E-01 | loss scale: 1.0 | grad norm: 0.752 | number of skipped iterations:   0 |"
        " number of nan iterations:   0 |\n"
    )
    bad = (
        ok.replace("100/", "101/").replace(" lm loss: 7.334521E-01 |", "").replace("grad norm: 0.752", "grad norm: nan")
    )
    calib = (
        ok.replace("100/", "102/")
        .replace(" lm loss: 7.334521E-01 |", "")
        .replace("skipped iterations:   0", "skipped iterations:  10")
    )
    a, b, c = records(ok + bad + calib)
    assert (a.step, a.loss, a.loss_missing) == (100, pytest.approx(0.7334521), False)
    assert (b.step, b.loss, b.loss_missing) == (101, None, True) and math.isnan(b.grad_norm)
    assert c.loss_missing is False and c.skipped == 10  # an interval of skipped (fp16 calibration) steps


def test_a_dict_wrapped_mid_word_is_joined():
    log = (
        "{'loss': 0.9, 'grad_norm': 1.1, 'learning_rate': 1e-05, 'epoch': 0.1}\n"
        "{'loss': 0.0, 'grad_no\nrm': nan, 'learning_rate': 1e-05, 'ep\noch': 0.2}\n"
    )
    recs = records(log)
    assert len(recs) == 2 and math.isnan(recs[1].grad_norm) and recs[1].epoch == 0.2


def test_a_wrapped_megatron_line_is_joined():
    log = (
        " iteration      101/    1000 | consumed samples:     6464 | learning rate: 6.680E-06 | lm loss: na\n"
        "n | loss scale: 1.0 | grad norm: nan | number of skipped iterations:   0 | number of nan iterations:   0 |\n"
    )
    (r,) = records(log)
    assert r.step == 101 and math.isnan(r.loss)


def test_deepspeed_overflow_split_by_terminal_padding():
    log = (
        "[2024-11-04 11:41:27,623] [INFO] [loss_scaler.py:183:update_scale] [deepspeed] OVERFLOW! Rank 0 Skipping step."
        " Attempted loss scal                                 e: 8192, reducing to 4096\n"
    )
    (s,) = signals(log)
    assert s.kind == "overflow" and s.data["attempted"] == 8192 and s.data["reduced"] == 4096


def test_an_oom_message_wrapped_over_lines_keeps_its_numbers():
    log = (
        "RuntimeError: CUDA out of memory. Tried to allocate 2.26 GiB (GPU 0; 6.00 GiB total capacity; 781.59 MiB already\n"
        "allocated; 3.03 GiB free; 1.24 GiB reserved in total by PyTorch)\n"
    )
    (s,) = signals(log)
    n = s.data["numbers"]
    assert (n.requested, n.total, n.free, n.reserved) == (
        int(2.26 * 2**30),
        int(6 * 2**30),
        int(3.03 * 2**30),
        int(1.24 * 2**30),
    )
    assert n.allocated == int(781.59 * 2**20)


def test_nccl_timeout_fields_in_any_order_and_wrapped():
    (a,) = signals(
        "[E ProcessGroupNCCL.cpp:566] [Rank 1] Watchdog caught collective operation timeout: "
        "WorkNCCL(OpType=ALLREDUCE, Timeout(ms)=1800000) ran for 1803936 millisecond\ns before timing out.\n"
    )
    assert (a.data["op"], a.data["timeout_ms"], a.data["ran_ms"], a.data["rank"]) == ("ALLREDUCE", 1800000, 1803936, 1)
    (b,) = signals("WorkNCCL(OpType=ALLREDUCE, SeqNum=458) ran for 1800600 ms before timing out.\n")
    assert (b.data["op"], b.data["seq"], b.data["ran_ms"]) == ("ALLREDUCE", 458, 1800600)


@pytest.mark.parametrize(
    "line, step, loss",
    [
        ("Step 12 | loss:1.1174635887145996 lr:2e-05 tokens_per_second_per_gpu:542.97", 12, 1.1174635887145996),
        ("step:2 - train/loss:nan - train/grad_norm:0.0 - train/lr:1e-06", 2, "nan"),
        (
            "2026-08-10 16:00:44 | INFO | root | step 8 | epoch 0 | loss 0.7839 | grad_norm 1.7024 | lr 1.00e-05",
            8,
            0.7839,
        ),
        ("iter 1: loss nan, time 13.2ms", 1, "nan"),
        (
            "2019-04-16 10:35:26,752 maskrcnn_benchmark.trainer INFO: eta: 17:39:53  iter: 140  loss: nan (nan)  lr: 0.003333",
            140,
            "nan",
        ),
        (
            "2023-10-24 08:06:41,294 - mmdet - INFO - Epoch [7][5850/32025]\tlr: 7.146e-04, loss_cls: 0.42, loss: 31.4201, grad_norm: 3637.0292",
            6 * 32025 + 5850,
            31.4201,
        ),
        ("Epoch 0:  22%|██▏       | 4/18 [00:17<01:02,  4.47s/it, loss=10.072, v_num=193315]", 4, 10.072),
        (
            "| epoch 001:    200 / 1374 loss=14.351, ppl=20899.56, num_updates=190, lr=4.84525e-06, gnorm=3.901, loss_scale=0.062",
            190,
            14.351,
        ),
        (
            "2017-08-20 16:11:46 INFO  [Epoch 64 740096/1281167][Iteration 45459] Loss is Infinity. Current learning rate is 0.0462.",
            45459,
            "inf",
        ),
        (
            "DLL 2020-06-03 16:09:11.353998 - Training Epoch: 0 Training Iteration: 1785  average_loss : 1.4877  step_loss : 1.6357",
            1785,
            1.4877,
        ),
    ],
)
def test_step_and_loss_next_to_known_keys_in_any_line_shape(line, step, loss):
    (r,) = records(line + "\n")
    assert r.step == step
    if loss == "nan":
        assert math.isnan(r.loss)
    elif loss == "inf":
        assert r.loss == math.inf
    else:
        assert r.loss == pytest.approx(loss)


def test_auxiliary_losses_are_not_the_loss():
    (r,) = records(
        "Epoch [1][50/100]\tlr: 1e-3, loss_cls: nan, loss_bbox: 0.2, nll_loss: 0.3, loss: 0.61, grad_norm: 2.0\n"
    )
    assert r.loss == 0.61
    (m,) = records(
        " iteration 3/ 10 | lm loss: 1.45 | mtp_1 loss: 4.08 | loss scale: 1.0 | grad norm: 1014.636 |"
        " number of skipped iterations:   0 | number of nan iterations:   0 |\n"
    )
    assert m.loss == 1.45 and m.grad_norm == 1014.636 and m.loss_scale == 1.0


def test_feeding_in_small_chunks_gives_the_same_events():
    from tests.train.conftest import FIXTURES

    data = (FIXTURES / "ds_chinese_llama_alpaca534_scale_to_minimum.log").read_bytes() * 3
    whole = [(type(e).__name__, e.where.line, getattr(e, "step", None)) for e in events(data)]
    for chunk in (1, 7, 4096):
        assert [(type(e).__name__, e.where.line, getattr(e, "step", None)) for e in events(data, chunk=chunk)] == whole


def test_memory_stays_flat_on_an_endless_carriage_return_line():
    """tqdm writing to a file with \\r and no \\n for the whole run: the buffer does not grow."""
    from mlops_cli.train.scan import LOOKAHEAD, LOOKBEHIND, MAX_LINE

    p = LogParser("log")
    bar = b"\r 50%|#####     | 500/1000 [01:00<01:00, 8.33it/s, loss=0.52]"
    biggest = 0
    for _ in range(200):
        p.feed(bar * 2000)  # ~120 KB per feed, 24 MB in all, no newline
        biggest = max(biggest, len(p._scanner._carry))
    p.close()
    assert biggest <= LOOKBEHIND + LOOKAHEAD + MAX_LINE
    assert p.records > 0 and p.bytes_seen == 200 * 2000 * len(bar)


def test_context_model_precision_and_clipping_from_config_dumps():
    log = (
        "[INFO|configuration_utils.py:733] loading configuration file config.json from cache at "
        "/root/.cache/huggingface/hub/models--meta-llama--Llama-3.1-8B/snapshots/abc/config.json\n"
        "fp16=True,\nmax_grad_norm=0.3,\nwarmup_ratio=0.03,\nper_device_train_batch_size=4,\n"
        "  cutoff_len: 2048\nfinetuning_type: lora\n"
    )
    p = LogParser("log")
    p.feed(log.encode())
    p.close()
    c = p.context
    assert (c.model, c.precision, c.max_grad_norm, c.batch_size, c.seq_len, c.method) == (
        "meta-llama/Llama-3.1-8B",
        "fp16",
        0.3,
        4,
        2048,
        "lora",
    )
    assert c.warmup == "warmup_ratio 0.03"


def test_a_paddle_one_element_list_loss_and_an_epoch_batch_counter_are_read():
    (r,) = records("2022-12-08 17:57:32,672-INFO: Total iter: 10, epoch: 0, batch: 10, loss: [nan]\n")
    assert r.step == 10 and math.isnan(r.loss)
    (r,) = records("Epoch 0, batch 70,  lr: 0.004000, 'loss_bbox': 'nan', 'loss': 'nan', time: 1.004\n")
    assert r.step == 70 and math.isnan(r.loss)
    (r,) = records("[2021-07-14 02:12:37] Train epoch: 0, batch: 790/34799, loss: nan, learning rate: 0.0001\n")
    assert r.step == 790
    # the global step: epochs before this one (counted from 0 once an `epoch 0` was printed, else from 1)
    zero = records("Train epoch: 0, batch: 10/100, loss: 1.0\nTrain epoch: 2, batch: 5/100, loss: 0.9\n")
    assert [r.step for r in zero] == [10, 205]
    one = records("Train epoch: 2, batch: 5/100, loss: 0.9\n")
    assert one[0].step == 105
    (r,) = records("global batch size:  512 | epoch 3 | loss 1.25\n")
    assert r.step == 3  # `batch size` is not a batch counter
