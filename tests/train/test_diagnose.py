"""The rules: the traps from the research, each cause, the OOM split, one-rank NaN."""

from __future__ import annotations

from tests.train.conftest import analyse_bytes

from mlops_cli.train.diagnose import nan_cause
from mlops_cli.train.oom import parse_oom, split_kind


def hf(step, loss, grad, lr=2e-05, bar=True, **extra):
    d = {"loss": loss, "grad_norm": grad, "learning_rate": lr, "epoch": step / 1000, **extra}
    body = "{" + ", ".join(f"'{k}': {v}" for k, v in d.items()) + "}"
    return (f" {step // 10}%|#| {step}/1000 [00:{step % 60:02d}<10:00, 1.00it/s]" if bar else "") + body + "\n"


def healthy_hf(n=20, start=10):
    return "".join(hf(s, round(2.0 - s / 1000, 4), 1.0 + (s % 7) / 10) for s in range(start, start + 10 * n, 10))


def test_hf_filter_trap_loss_zero_with_nan_grad_norm_is_a_nan():
    r = analyse_bytes((healthy_hf() + hf(210, 0.0, "nan") + hf(220, 0.0, "nan")).encode())
    (f,) = r.errors
    assert f.cls == "nan_loss" and f.step == 210
    assert any("logging_nan_inf_filter" in b for b in f.because)


def test_one_nan_grad_norm_with_a_finite_loss_is_a_skipped_fp16_step_not_an_error():
    r = analyse_bytes((healthy_hf() + hf(210, 1.79, "nan") + hf(220, 1.78, 1.1) + hf(230, 1.77, 1.0)).encode())
    assert r.exit_code == 0 and not r.findings
    assert any("skipped" in n for n in r.notes)


def test_grpo_loss_of_zero_and_rising_is_normal():
    lines = "".join(
        hf(s, round(0.0001 * s / 10, 4), 0.05, lr=1e-06, reward=0.5, kl=0.001 * s) for s in range(10, 500, 10)
    )
    r = analyse_bytes(lines.encode())
    assert r.exit_code == 0 and not r.findings


def test_deepspeed_calibration_at_the_start_is_normal_and_a_descent_to_one_is_not():
    def ov(a, b):
        return (
            f"[2023-04-28 06:51:29,903] [INFO] [loss_scaler.py:181:update_scale] [deepspeed] OVERFLOW! Rank 0 "
            f"Skipping step. Attempted loss scale: {a}, reducing to {b}\n"
        )

    calib = "".join(ov(2**k, 2 ** (k - 1)) for k in range(32, 26, -1)) + healthy_hf()
    assert analyse_bytes(calib.encode()).exit_code == 0
    collapse = healthy_hf() + "".join(ov(2**k, 2 ** (k - 1)) for k in range(6, 0, -1)) + ov(1, 1)
    r = analyse_bytes(collapse.encode())
    (f,) = r.errors
    assert (f.cls, f.cause) == ("nan_loss", "fp16_overflow_loss_scale")


def test_megatron_fp16_calibration_is_normal():
    lines = "".join(
        f" iteration {i:8d}/ 1000 | learning rate: 0.000E+00 | loss scale: {2.0 ** (32 - i):.1f} |"
        f" number of skipped iterations:   1 | number of nan iterations:   0 |\n"
        for i in range(1, 10)
    )
    lines += "".join(
        f" iteration {i:8d}/ 1000 | learning rate: 1.0E-05 | lm loss: {9.5 - i / 100:.6E} | loss scale: 4096.0 |"
        f" grad norm: 3.1 | number of skipped iterations:   0 | number of nan iterations:   0 |\n"
        for i in range(10, 40)
    )
    assert analyse_bytes(lines.encode()).exit_code == 0


def test_the_expandable_segments_hint_is_not_evidence():
    """The same hint with capacity numbers and with fragmentation numbers: the numbers decide."""
    hint = (
        " If reserved but unallocated memory is large try setting PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True"
        " to avoid fragmentation.  See documentation for Memory Management"
    )
    cap = (
        "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity of 23.65 GiB"
        " of which 1.06 GiB is free. Of the allocated memory 22.00 GiB is allocated by PyTorch, and 194.87 MiB is"
        " reserved by PyTorch but unallocated." + hint
    )
    frag = cap.replace("194.87 MiB", "4.50 GiB").replace("22.00 GiB is allocated", "17.50 GiB is allocated")
    assert split_kind(parse_oom(cap.encode())) == "capacity"
    assert split_kind(parse_oom(frag.encode())) == "fragmentation"
    r = analyse_bytes((healthy_hf() + frag + "\n").encode(), framework="hf")
    (f,) = r.errors
    assert f.cls == "cuda_oom" and f.data["split"] == "fragmentation" and f.step == 200
    assert f.data["numbers"]["reserved_unallocated"] == int(4.5 * 2**30)
    assert any("expandable_segments" in x for x in f.fix)


def test_oom_check_command_uses_the_model_from_the_log_or_model_flag():
    import io

    from mlops_cli.train.analyse import analyse

    msg = (
        "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity of 79.18 GiB"
        " of which 1.06 GiB is free. Of the allocated memory 77.00 GiB is allocated by PyTorch, and 94.87 MiB is"
        " reserved by PyTorch but unallocated.\n"
    )
    log = (
        "model_name_or_path: Qwen/Qwen2.5-7B\nper_device_train_batch_size: 8\ncutoff_len: 4096\n" + healthy_hf(3) + msg
    )
    f = analyse([("log", io.BytesIO(log.encode()))]).errors[0]
    assert f.data["oom_check"] == "mlops oom-check Qwen/Qwen2.5-7B --gpu-mem 79.18GiB --batch 8 --seq-len 4096"
    g = analyse([("log", io.BytesIO(msg.encode()))], model="meta-llama/Llama-3.1-8B").errors[0]
    assert g.data["oom_check"].startswith("mlops oom-check meta-llama/Llama-3.1-8B --gpu-mem 79.18GiB")
    h = analyse([("log", io.BytesIO(msg.encode()))]).errors[0]
    assert h.data["oom_check"] is None and any("--model" in x for x in h.fix)


def test_nan_cause_priority():
    base = {"records_before": 50, "step": 500, "lr": 3e-4, "max_lr": 3e-4}
    assert nan_cause({**base, "op": "SqrtBackward0", "scale_floor": "x"})[0] == "numerical_op"
    assert nan_cause({**base, "scale_floor": "the loss scale fell to 1"})[0] == "fp16_overflow_loss_scale"
    assert nan_cause({**base, "records_before": 0})[0] == "bad_data"
    assert nan_cause({**base, "recovered": True})[0] == "bad_data"
    assert nan_cause({**base, "one_rank": 3})[0] == "bad_data"
    assert nan_cause({**base, "lr_rising": True})[0] == "lr_too_high"
    assert nan_cause({**base, "lr_jump": 10.0})[0] == "lr_too_high"
    assert nan_cause({**base, "lr": 1e-7, "lr_rising": True})[0] is None  # too small an lr to blame
    assert nan_cause({**base, "pre_grad_max": 50.0, "grad_baseline": 1.0})[0] == "grad_explosion"
    assert nan_cause({**base, "pre_loss_max": 900.0, "loss_baseline": 2.0})[0] == "grad_explosion"
    assert nan_cause({**base, "precision": "fp16"})[0] == "fp16_overflow_loss_scale"
    assert nan_cause(base)[0] is None


def test_lr_too_high_fix_names_the_lr_and_the_framework_flags():
    warm = "".join(hf(s, round(2.0 - s / 2000, 4), 1.0, lr=2e-4 * s / 300) for s in range(10, 300, 10))
    r = analyse_bytes((warm + hf(300, "nan", "nan", lr=2e-4)).encode())
    (f,) = r.errors
    assert f.cause == "lr_too_high" and f.step == 300
    assert any("from 0.0002" in x and "--learning_rate" in x for x in f.fix)
    assert any("--max_grad_norm 1.0" in x for x in f.fix)


def test_nan_on_one_rank_then_the_others_time_out():
    lines = []
    for st in (10, 20, 30):
        for rank in range(4):
            bad = rank == 1 and st == 30
            lines.append(
                f"[rank{rank}]: step {st} | loss {'nan' if bad else 1.5} | grad_norm {'nan' if bad else 1.0}\n"
            )
    lines.append(
        "[rank0]:[E1206 18:44:12.7 ProcessGroupNCCL.cpp:607] [Rank 0] Watchdog caught collective operation timeout:"
        " WorkNCCL(SeqNum=77, OpType=ALLREDUCE, NumelIn=1, NumelOut=1, Timeout(ms)=600000) ran for 600061 milliseconds"
        " before timing out.\n"
    )
    r = analyse_bytes("".join(lines).encode())
    first = r.errors[0]
    assert (first.cls, first.rank, first.step, first.cause) == ("nan_on_one_rank", 1, 30, "bad_data")
    nccl = [f for f in r.errors if f.cls == "nccl_timeout"][0]
    assert "NaN on rank 1" in nccl.because[0]


def test_loss_spike_without_nan_is_a_warning_only():
    lines = "".join(f"step {s} | loss {2.0 + (0.02 if s % 2 else 0):.4f} | lr 1e-4\n" for s in range(1, 40))
    lines += "step 40 | loss 9.5 | lr 1e-4\nstep 41 | loss 2.1 | lr 1e-4\n"
    r = analyse_bytes(lines.encode())
    assert r.exit_code == 0
    (w,) = r.findings
    assert (w.cls, w.severity, w.step) == ("loss_spike", "warning", 40)


def test_plateau_from_the_start_is_a_warning_and_a_falling_loss_is_not():
    flat = "".join(f"step {s} | loss {2.30 + 0.01 * (s % 3):.4f} | lr 1e-5\n" for s in range(1, 160))
    (w,) = analyse_bytes(flat.encode()).findings
    assert (w.cls, w.severity) == ("loss_plateau", "warning")
    falling = "".join(f"step {s} | loss {2.30 - 0.005 * s:.4f} | lr 1e-5\n" for s in range(1, 160))
    assert not analyse_bytes(falling.encode()).findings


def test_the_json_report_has_the_documented_fields():
    r = analyse_bytes((healthy_hf() + hf(210, "nan", "nan")).encode())
    doc = r.to_json()
    assert set(doc) >= {
        "schema",
        "files",
        "framework",
        "healthy",
        "primary",
        "findings",
        "series",
        "notes",
        "bytes",
        "records",
    }
    f = doc["findings"][0]
    assert doc["primary"] == f["id"] == "nan_loss-1"
    assert set(f) >= {
        "id",
        "class",
        "severity",
        "title",
        "cause",
        "rank",
        "file",
        "onset",
        "because",
        "evidence",
        "fix",
        "data",
    }
    assert set(f["onset"]) == {"step", "time", "elapsed", "epoch", "line"}
    s = doc["series"][0]
    assert s["points_columns"] == ["step", "loss", "lr", "grad_norm", "loss_scale"]
    assert [p[1] == "nan" for p in s["points"]][-1]
    import json

    json.dumps(doc, allow_nan=False)  # no NaN/Infinity in the document


def test_a_counted_nan_iteration_with_a_finite_loss_and_a_skipping_guard_are_notes():
    meg = "".join(
        f" iteration {i:8d}/ 1000 | learning rate: 1.0E-05 | lm loss: {3.1 - i / 1000:.6E} | loss scale: 4096.0 |"
        f" grad norm: 1.2 | number of skipped iterations:   {1 if i == 30 else 0} |"
        f" number of nan iterations:   {1 if i == 30 else 0} |\n"
        for i in range(1, 60)
    )
    r = analyse_bytes(meg.encode())
    assert r.exit_code == 0 and any("NaN iteration" in n for n in r.notes)
    guard = "step 10 | loss 1.2\nWARNING: Skip the batch due to the loss is NaN\nstep 11 | loss 1.19\n"
    r = analyse_bytes(guard.encode())
    assert r.exit_code == 0 and any("skipped 1 batch" in n for n in r.notes)


def test_a_run_that_ends_on_an_unknown_exception_is_a_crash_and_a_handled_one_is_not():
    tb = (
        'Traceback (most recent call last):\n  File "train.py", line 88, in <module>\n    batch = next(it)\n'
        "[rank1]: KeyError: 'input_ids'\n"
    )
    r = analyse_bytes(("step 10 | loss 1.2\n" + tb).encode())
    (f,) = r.errors
    assert (f.cls, f.rank, f.line) == ("crash", 1, 5) and "KeyError: 'input_ids'" in f.title
    assert analyse_bytes(("step 10 | loss 1.2\n" + tb + "step 11 | loss 1.1\n").encode()).exit_code == 0
    oom_then_child = (
        "step 10 | loss 1.2\ntorch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a"
        " total capacity of 8.00 GiB of which 0 bytes is free. Of the allocated memory 7.9 GiB is allocated by"
        " PyTorch, and 1.00 MiB is reserved by PyTorch but unallocated.\n"
        "torch.distributed.elastic.multiprocessing.errors.ChildFailedError: \n"
    )
    assert [f.cls for f in analyse_bytes(oom_then_child.encode()).errors] == ["cuda_oom"]


def test_a_non_finite_grad_norm_last_that_the_code_says_it_skipped_is_not_an_onset():
    """verl prints `WARN: rank N grad_norm is not finite: nan` and zero_grads instead of stepping
    (the message is verl's own, dp_actor.py): the last record's NaN norm is a skipped update."""
    steps = "".join(
        f"step:{s} - actor/pg_loss:{0.01 * (s % 5):.3f} - actor/grad_norm:{0.5 + s / 100:.3f} - actor/lr:1e-06\n"
        for s in range(1, 30)
    )
    last = "step:30 - actor/pg_loss:0.020 - actor/grad_norm:nan - actor/lr:1e-06\n"
    bare = analyse_bytes((steps + last).encode())
    assert bare.errors and bare.errors[0].cls == "nan_loss"  # outside fp16, with no word about a skip
    skipped = analyse_bytes((steps + "(WorkerDict pid=1) WARN: rank 0 grad_norm is not finite: nan\n" + last).encode())
    assert skipped.exit_code == 0, [(f.cls, f.step) for f in skipped.errors]
    assert any("skipped" in n for n in skipped.notes)


def test_hf_dicts_without_a_bar_get_their_step_from_the_epoch_when_the_header_gives_the_epoch_length():
    """The header is verbatim from huggingface/open-r1#483 (196 steps, 1 epoch); the dicts are in
    transformers' format with full-precision epochs, as newer versions print them."""
    head = (
        "[INFO|trainer.py:2405] 2025-03-06 12:04:09,913 >> ***** Running training *****\n"
        "[INFO|trainer.py:2406] 2025-03-06 12:04:09,913 >>   Num examples = 5,498\n"
        "[INFO|trainer.py:2407] 2025-03-06 12:04:09,914 >>   Num Epochs = 1\n"
        "[INFO|trainer.py:2413] 2025-03-06 12:04:09,914 >>   Total optimization steps = 196\n"
    )
    dicts = "".join(
        hf(s, round(2.0 - s / 1000, 4), 1.0, bar=False, epoch=repr(s / 196)).replace(f"'epoch': {s / 1000}, ", "")
        for s in range(5, 100, 5)
    )
    r = analyse_bytes(
        (head + dicts + hf(100, 0.0, "nan", bar=False, epoch=repr(100 / 196)).replace("'epoch': 0.1, ", "")).encode()
    )
    (f,) = r.errors
    assert f.cls == "nan_loss" and f.step == 100
    rounded = analyse_bytes((head + hf(100, 0.0, "nan", bar=False, epoch=0.51).replace("'epoch': 0.1, ", "")).encode())
    assert rounded.errors[0].step is None  # 2 decimals: 0.51 x 196 is not a whole step, so no guess


def test_host_allocation_failures_are_host_memory_not_a_crash():
    """torch >= 2.0 words it `not enough memory` (older: `can't allocate memory`)."""
    r = analyse_bytes(
        b"RuntimeError: [enforce fail at alloc_cpu.cpp:114] data. DefaultCPUAllocator: not enough "
        b"memory: you tried to allocate 1073741824 bytes.\n"
    )
    (f,) = r.errors
    assert f.cls == "host_oom_dataloader" and f.cause == "host_ram" and "allocation failed" in f.title


# --- the classes heldout3 showed (real lines from tests/fixtures/train/heldout3, with their traps) ---------


def test_an_nccl_error_that_names_its_nccl_version_is_not_nccl_info_chatter():
    line = (
        b"torch.distributed.DistBackendError: NCCL error in: /pytorch/torch/csrc/distributed/c10d/NCCLUtils.hpp:268, "
        b"remote process exited or there was a network error, NCCL version 2.21.5\n"
    )
    chatter = b"node-7:1234:1234 [0] NCCL INFO NCCL version 2.21.5+cuda12.4\n" * 30
    r = analyse_bytes(chatter + line)
    (f,) = r.errors
    assert (f.cls, f.line) == ("nccl_error", 31)
    assert analyse_bytes(chatter).exit_code == 0


def test_a_named_nccl_error_on_the_failed_or_timed_out_line_is_an_error_not_a_timeout():
    flat = (
        b"[E ProcessGroupNCCL.cpp:455] Some NCCL operations have failed or timed out. [...] what(): NCCL error: "
        b"remote process exited or there was a network error, NCCL version 2.14.3 ncclRemoteError: A call failed\n"
    )
    assert analyse_bytes(flat).errors[0].cls == "nccl_error"
    timeout = (
        b"[rank11]:[E617 15:17:35.519071987 ProcessGroupNCCL.cpp:681] [Rank 11] Some NCCL operations have "
        b"failed or timed out. Due to the asynchronous nature of CUDA kernels, subsequent GPU operations might "
        b"run on corrupted/incomplete data.\n"
    )
    assert analyse_bytes(timeout).errors[0].cls == "nccl_timeout"


def test_a_kernel_assertion_without_loss_in_its_name_is_the_onset():
    lines = (
        b"../aten/src/ATen/native/cuda/Indexing.cu:1146: indexSelectLargeIndex: block: [18,0,0], thread: [5,0,0] "
        b"Assertion `srcIndex < srcSelectDimSize` failed.\n"
        * 3
        + b"RuntimeError: CUDA error: device-side assert triggered\n"
    )
    f = analyse_bytes(lines).errors[0]
    assert (f.cls, f.line) == ("device_assert", 1)


def test_a_wrapped_oom_message_keeps_its_numbers_and_a_headless_one_is_still_an_oom():
    wrapped = (
        b"OutOfMemoryError: CUDA out of memory. Tried to allocate 1.25 GiB (GPU 1; 79.10 GiB total capacity; "
        b"76.13 GiB \nalready allocated; 290.12 MiB free; 77.47 GiB reserved in total by PyTorch) If reserved "
        b"memory is >> allocated \nmemory try setting max_split_size_mb\n"
    )
    f = analyse_bytes(wrapped).errors[0]
    assert (f.cls, f.data["split"]) == ("cuda_oom", "fragmentation")
    headless = (
        b"Tried to allocate 20.00 MiB (GPU 0; 1.96 GiB total capacity; 1.24 GiB already allocated; 2.88 MiB "
        b"free; 1.25 GiB reserved in total by PyTorch)\n"
    )
    f = analyse_bytes(headless).errors[0]
    assert (f.cls, f.data["split"]) == ("cuda_oom", "capacity")


def test_a_worker_killed_by_sigabrt_is_a_crash_and_by_sigkill_host_ram():
    def killed(sig):
        return f"RuntimeError: DataLoader worker (pid 2256) is killed by signal: {sig}. \n".encode()

    assert analyse_bytes(killed("Aborted")).errors[0].cause == "worker_crash"
    assert analyse_bytes(killed("Killed")).errors[0].cause == "host_ram"
    assert analyse_bytes(b"iter 144: time:1.722(sec), total-loss 0.5882\n\n**Killed**\n").errors[0].cause == "host_ram"


def test_nan_guards_in_words_and_in_a_json_exception():
    guard = (
        b'{"simapp_exception": {"function": "training_worker", "message": "NaN detected in loss function, '
        b'aborting training. Job failed!", "eventType": "system_error"}}\n'
    )
    assert analyse_bytes(guard).errors[0].cls == "nan_loss"


def test_an_eval_nan_with_a_finite_training_loss_is_a_warning_not_an_error():
    lines = healthy_hf() + "{'eval_loss': nan, 'eval_runtime': 17.3, 'epoch': 0.21}\n" + healthy_hf(start=220)
    r = analyse_bytes(lines.encode())
    assert r.exit_code == 0
    assert [f.cls for f in r.findings] == ["eval_nan"]
    # a training NaN is still the error; the eval NaN is evidence of it
    r = analyse_bytes((lines + hf(440, "nan", "nan")).encode())
    assert [f.cls for f in r.errors] == ["nan_loss"]


def test_dpo_loss_zero_with_nan_log_probs_is_the_hidden_nan_and_grpo_zero_is_not():
    dpo = (
        "{'loss': 0.0, 'learning_rate': 9.99e-06, 'rewards/chosen': nan, 'rewards/rejected': nan, "
        "'rewards/margins': nan, 'logps/chosen': nan, 'logits/chosen': nan, 'epoch': 0.0}\n"
    )
    assert analyse_bytes(dpo.encode()).errors[0].cls == "nan_loss"
    grpo = "".join(hf(s, 0.0, 0.05, reward=0.5, kl="nan") for s in range(10, 100, 10))
    assert analyse_bytes(grpo.encode()).exit_code == 0


def test_markdown_bold_and_dotted_keys_and_gan_postfixes_are_read():
    dll = (
        b"DLL 2023-02-15 08:27:46.754175 - Epoch: 0 Iteration: 20  train.loss : **inf** None train.lr : 0.256  "
        b"train.grad_scale : 128.00000 None\n"
    )
    f = analyse_bytes(dll).errors[0]
    assert (f.cls, f.step) == ("nan_loss", 20)
    gan = "Epoch 41/250: 100%|████| 9375/9375 [07:11<00:00, 21.73it/s, DR=713, DF=nan, G=nan, GP=2.16e+4, LR=0.0001]\n"
    assert analyse_bytes(gan.encode()).errors[0].cls == "nan_loss"


def test_a_run_of_nan_grad_norms_without_a_loss_is_an_onset_outside_fp16_only():
    rows = "".join(f"    backbone.blocks.{i}.weight - Grad Norm: nan\n" for i in range(4))
    f = analyse_bytes(rows.encode()).errors[0]
    assert (f.cls, f.line) == ("nan_loss", 1)
    fp16 = "fp16: true\n" + "".join(f"step {i} | grad_norm: inf\n" for i in range(3)) + healthy_hf()
    assert analyse_bytes(fp16.encode()).exit_code == 0


def test_short_logs_get_spike_divergence_and_flat_loss_warnings():
    spike = (
        "Epoch(train)  [2][ 50/788]  lr: 2.0000e-03  grad_norm: 3.4572  loss: 1.5043\n"
        "Epoch(train)  [2][100/788]  lr: 2.0000e-03  grad_norm: 31101415.5974  loss: 63.1261\n"
    )
    r = analyse_bytes(spike.encode())
    assert r.exit_code == 0 and [f.cls for f in r.findings] == ["loss_spike"]
    diverged = "".join(
        f"step={s}  loss={v}  gnorm=7.0\n"
        for s, v in (
            (1, 15.5),
            (55, 13.0),
            (110, 3.8),
            (165, 2.39),
            (220, 1.43),
            (275, 5.82),
            (330, 7.05),
            (385, 10.03),
        )
    )
    (w,) = analyse_bytes(diverged.encode()).findings
    assert (w.cls, w.step) == ("loss_spike", 220)
    flat = "".join(
        f"Iteration {i * 20}, loss = {v}\n"
        for i, v in enumerate((6.91161, 6.90501, 6.90635, 6.90681, 6.90704, 6.90776, 6.90776, 6.90776))
    )
    (w,) = analyse_bytes(flat.encode()).findings
    assert w.cls == "loss_plateau"
    falling = "".join(f"Iteration {i * 20}, loss = {6.9 - i * 0.2:.4f}\n" for i in range(8))
    assert not analyse_bytes(falling.encode()).findings


def test_tensorflow_and_xla_oom_wordings_are_ooms_with_their_own_fixes():
    tf = (
        b"2024-01-01 10:00:00.000001: W tensorflow/core/framework/op_kernel.cc:1192] Resource exhausted: OOM when "
        b"allocating tensor with shape[64,512,28,28] and type float on /job:localhost/replica:0/task:0/device:GPU:0\n"
    )
    f = analyse_bytes(tf).errors[0]
    assert (f.cls, f.line) == ("cuda_oom", 1) and "TensorFlow" in f.title
    assert not any("PYTORCH_CUDA_ALLOC_CONF" in x or "expandable" in x for x in f.fix + f.because)
    keras = (
        b"ResourceExhaustedError: OOM when allocating tensor with shape[128,64] and type float by allocator GPU_0_bfc\n"
    )
    assert analyse_bytes(keras).errors[0].cls == "cuda_oom"
    xla = (
        b"E0101 12:00:00.1 1 pjrt_client.cc:2985] Execution of replica 0 failed: RESOURCE_EXHAUSTED: Out of memory "
        b"while trying to allocate 1073741824 bytes.\n"
    )
    f = analyse_bytes(xla).errors[0]
    assert f.cls == "cuda_oom" and "XLA" in f.title and any("XLA_PYTHON_CLIENT" in x for x in f.fix)
    assert f.data["oom_check"] is None and not any("oom-check" in x for x in f.fix)
    wrapped = (
        b"[1] 2024-01-01: E local_client.cc:672] Execution of replica 0 failed: Resource exhausted: Out \nof memory.\n"
    )
    assert (analyse_bytes(wrapped).errors[0].cls, analyse_bytes(wrapped).errors[0].line) == ("cuda_oom", 1)
    async_alloc = b"E1103 1 gpu_cudamallocasync_allocator.cc:361] cuMemAllocAsync failed: CUDA_ERROR_OUT_OF_MEMORY: out of memory\n"
    assert analyse_bytes(async_alloc).errors[0].cls == "cuda_oom"


def test_tensorflow_bfc_warning_and_other_resource_exhausted_statuses_are_not_ooms():
    bfc = (
        b"W bfc_allocator.cc:217] Allocator (GPU_0_bfc) ran out of memory trying to allocate 2.10GiB. The caller "
        b"indicates that this is not a failure, but may mean that there could be performance gains\n"
    )
    assert analyse_bytes(bfc + healthy_hf().encode()).exit_code == 0
    grpc = b"W grpc.cc:1] RESOURCE_EXHAUSTED: Received message larger than max (5000000 vs. 4194304)\n"
    assert analyse_bytes(grpc + healthy_hf().encode()).exit_code == 0


def test_nccl_error_wordings_and_nccl_error_returns_with_their_warn_line():
    pt = b"RuntimeError: NCCL error in: /pytorch/torch/lib/c10d/ProcessGroupNCCL.cpp:911, unhandled system error, NCCL version 2.7.8\n"
    f = analyse_bytes(b"Traceback (most recent call last):\n" + pt).errors[0]
    assert (f.cls, f.line) == ("nccl_error", 2)
    ret = (
        healthy_hf(3) + "host:1:1 [0] include/socket.h:333 NCCL WARN Call to connect returned Connection refused\n"
        "host:1:1 [0] NCCL INFO bootstrap.cc:95 -> 2\nhost:1:1 [0] NCCL INFO init.cc:700 -> 2\n"
    ).encode()
    f = analyse_bytes(ret).errors[0]
    assert (f.cls, f.line) == ("nccl_error", 4) and len(f.evidence) >= 2
    chatter = (
        b"host:1:1 [0] NCCL INFO Channel 00 : 0[0] -> 1[1] via P2P/IPC\n"
        b"host:1:1 [0] NCCL WARN Could not find real path of /sys/class/net/eth0\n"
    )
    assert analyse_bytes(chatter + healthy_hf().encode()).exit_code == 0


def test_a_rank_that_died_of_sigbus_is_shared_memory_and_sigsegv_stays_a_crash():
    bus = b"ERROR:torch.distributed.elastic.multiprocessing.api:failed (exitcode: -7) local_rank: 0 (pid: 138) of binary: /usr/bin/python3\n"
    f = analyse_bytes(bus).errors[0]
    assert (f.cls, f.cause, f.line) == ("host_oom_dataloader", "shared_memory", 1) and "SIGBUS" in f.title
    segv = bus.replace(b"-7", b"-11")
    assert analyse_bytes(segv).errors[0].cls == "crash"


def test_a_shells_job_control_killed_report_is_host_ram():
    log = (
        healthy_hf(3) + "/var/spool/slurmd/job00042/slurm_script: line 12:  4242 Killed                  "
        "python train.py --lr 1e-3\n"
    ).encode()
    f = analyse_bytes(log).errors[0]
    assert (f.cls, f.cause, f.line) == ("host_oom_dataloader", "host_ram", 4)


def test_a_logger_table_row_is_a_loss_and_a_log2_scale_is_not_a_scale():
    def table(loss, lg):
        return (
            f"---------------------------\n| lg_loss_scale | {lg} |\n| loss          | {loss}  |\n"
            f"| step          | 1.2e+03   |\n---------------------------\n"
        )

    healthy = "".join(table(f"{0.9 - i / 100:.3f}", "-1.62e+04") for i in range(20))
    assert analyse_bytes(healthy.encode()).exit_code == 0
    f = analyse_bytes((healthy + table("nan", "-1.62e+04")).encode()).errors[0]
    assert (f.cls, f.line) == ("nan_loss", 20 * 5 + 3)


def test_a_megatron_record_wrapped_at_its_separators_keeps_its_step():
    def rec(i, loss, gn):
        lm = f"lm loss: {loss} | " if loss else ""
        return (
            f"iteration {i}/50 | elapsed time per iteration: 21392.5 ms |\nlearning rate: 1.35E-04 | {lm}"
            f"global batch size: 4096 |\nloss scale: 1.0 | grad norm: {gn} |\n"
            f"number of skipped iterations: 0 | number of nan iterations: 0\n\n"
        )

    healthy = "".join(rec(i, f"{9.0 - i / 10:.6E}", 1.5) for i in range(1, 20))
    assert analyse_bytes(healthy.encode()).exit_code == 0
    f = analyse_bytes((healthy + rec(20, None, "nan")).encode()).errors[0]
    assert (f.cls, f.step) == ("nan_loss", 20)


# --- heldout5 classes: what a cut paste still proves ------------------------------------------------------

_TB = (
    "Traceback (most recent call last):\n"
    '  File "train.py", line 12, in <module>\n'
    "    main()\n"
    '  File "train.py", line 9, in main\n'
    "    trainer.train()\n"
)


def test_a_log_that_ends_inside_a_traceback_is_a_crash_that_says_the_error_line_is_missing():
    r = analyse_bytes((healthy_hf() + _TB).encode())
    (f,) = r.errors
    assert f.cls == "crash" and f.line == healthy_hf().count("\n") + 1
    assert f.data.get("cut") is True and any("not in the log" in b for b in f.because)


def test_a_traceback_with_its_error_line_or_followed_by_training_is_not_a_cut_crash():
    whole = analyse_bytes((healthy_hf() + _TB + "KeyError: 'losses'\n").encode())
    (f,) = whole.errors
    assert f.cls == "crash" and not f.data.get("cut") and "KeyError" in f.title
    went_on = analyse_bytes((healthy_hf(5) + _TB + healthy_hf(5, start=60)).encode())
    assert went_on.exit_code == 0 and not went_on.errors


def test_an_ipython_traceback_header_names_the_exception():
    r = analyse_bytes(
        (
            healthy_hf() + "NotImplementedError                       Traceback (most recent call last)\n"
            "Cell In[23], line 1\n"
        ).encode()
    )
    (f,) = r.errors
    assert f.cls == "crash" and "NotImplementedError" in f.title


def test_a_dataloader_kill_cut_before_the_signal_claims_no_cause():
    cut = analyse_bytes((healthy_hf() + "RuntimeError: DataLoader worker (pid 2978) is killed by\n").encode())
    (f,) = cut.errors
    assert f.cls == "host_oom_dataloader" and f.cause is None
    whole = analyse_bytes(
        (healthy_hf() + "RuntimeError: DataLoader worker (pid 2978) is killed by signal: Killed.\n").encode()
    )
    assert whole.errors[0].cause == "host_ram"


def test_fairseq_minimum_loss_exception_cut_after_its_first_words_is_the_loss_scale_floor():
    r = analyse_bytes((healthy_hf() + "FloatingPointError: Minimum loss.\n").encode())
    (f,) = r.errors
    assert f.cls == "nan_loss" and f.cause == "fp16_overflow_loss_scale"


# --- heldout6 classes ----------------------------------------------------------------------------------------


def test_torch26_dump_signal_wording_is_an_nccl_timeout():
    """torch 2.6+: the rank whose collective timed out may print only `Received a dump signal due to a collective
    timeout` (its `Watchdog caught ...` line elsewhere); the line also holds the `last enqueued NCCL work` numbers."""
    line = (
        "[rank0]:[E1206 13:01:11.438828600 ProcessGroupNCCL.cpp:1870] [PG ID 0 PG GUID 0(default_pg) Rank 0] Received "
        "a dump signal due to a collective timeout from this local rank and we will try our best to dump the debug "
        "info. Last enqueued NCCL work: 19964, last completed NCCL work: 19961.\n"
    )
    (f,) = analyse_bytes((healthy_hf() + line).encode()).errors
    assert (f.cls, f.line, f.rank) == ("nccl_timeout", 21, 0)
    progress = line.replace(
        "Received a dump signal due to a collective timeout", "Exception (either an error or timeout)"
    )
    assert analyse_bytes((healthy_hf() + progress).encode()).exit_code == 0


def test_the_shells_killed_glued_to_a_bar_or_in_a_chinese_locale_is_host_ram():
    bar = " 31%|###       | 331/1063 [01:06<03:59,  3.06it/s]Killed\n"
    keras = "319/450 [====>...] - ETA: 17:28 - loss: 20.6688 - class_loss: 0.6522Killed\n"
    for tail in (bar, keras, "已杀死\n"):
        (f,) = analyse_bytes((healthy_hf() + tail).encode()).errors
        assert (f.cls, f.cause, f.line) == ("host_oom_dataloader", "host_ram", 21), tail
    prose = healthy_hf() + "INFO: the stale evaluation worker was killed\nrestarting it: not Killed\n"
    assert analyse_bytes(prose.encode()).exit_code == 0


def test_an_evaluation_bar_with_a_nan_loss_is_an_eval_nan_not_a_training_nan():
    def epoch(e, val):
        return (
            f"Train Epoch: {e} Loss: {1.0 - e / 100:.4f}: 100% 2785/2785 [00:53<00:00, 52.28it/s]\n"
            f"Valid Epoch: {e} Loss: {val}: 100% 660/660 [00:04<00:00, 143.71it/s]\n"
        )

    r = analyse_bytes("".join(epoch(e, "nan") for e in range(1, 6)).encode())
    assert r.exit_code == 0 and any(f.cls == "eval_nan" for f in r.findings)
    train_nan = "".join(epoch(e, 0.5) for e in range(1, 6)) + "Train Epoch: 6 Loss: nan: 100% 2785/2785 [00:53<00:00]\n"
    assert analyse_bytes(train_nan.encode()).errors[0].cls == "nan_loss"


def test_rocm_hip_device_side_assertion_is_a_device_assert():
    hip = "/pytorch/aten/src/ATen/native/hip/Indexing.hip:1292: indexSelectLargeIndex: Device-side assertion `srcIndex < srcSelectDimSize' failed.\n"
    (f,) = analyse_bytes((healthy_hf() + hip * 3).encode()).errors
    assert (f.cls, f.line) == ("device_assert", 21) and "srcIndex < srcSelectDimSize" in f.data["assertion"]


def test_a_cuda_error_wrapped_mid_word_or_named_by_a_destructors_warning_is_a_cuda_error():
    wrapped = (
        healthy_hf()
        + "RuntimeError: CUDA error: an illeg\nal memory access was encountered Compile with TORCH_USE_CUDA_DSA\n"
    )
    (f,) = analyse_bytes(wrapped.encode()).errors
    assert (f.cls, f.line) == ("cuda_error", 21)
    warned = healthy_hf() + (
        "Warning: CUDA warning: an illegal memory access was encountered (function destroyEvent) \n"
        "terminate called after throwing an instance of 'c10::CUDAError'\n"
    )
    (f,) = analyse_bytes(warned.encode()).errors
    assert (f.cls, f.line) == ("cuda_error", 21)
    bare = healthy_hf() + "terminate called after throwing an instance of 'c10::CUDAError'\n"
    assert analyse_bytes(bare.encode()).errors[0].cls == "cuda_error"
    asserted = healthy_hf() + (
        "terminate called after throwing an instance of 'c10::CUDAError'\n"
        "  what():  CUDA error: device-side assert triggered\n"
    )
    (f,) = analyse_bytes(asserted.encode()).errors
    assert (f.cls, f.line) == ("device_assert", 22)


def test_an_ipython_oom_header_is_the_onset_only_when_the_message_never_comes():
    header = (
        "---------------------------------------------------------------------------\n"
        "OutOfMemoryError                          Traceback (most recent call last)\n"
        "----> 1 trainer_stats = trainer.train()\n"
    )
    message = (
        "OutOfMemoryError: CUDA out of memory. Tried to allocate 9.47 GiB. GPU 0 has a total capacity of 14.75 GiB of "
        "which 3.78 GiB is free. Process 2116 has 10.95 GiB memory in use.\n"
    )
    (f,) = analyse_bytes((healthy_hf() + header + message).encode()).errors
    assert (f.cls, f.line) == ("cuda_oom", 24)
    (f,) = analyse_bytes((healthy_hf() + header).encode()).errors
    assert (f.cls, f.line) == ("cuda_oom", 22)


def test_a_tracebacks_echo_of_a_raise_or_assert_is_code_not_the_nan_onset():
    for echo, exc in (
        (
            '    raise RuntimeError("Model diverged with loss = NaN.")\n',
            "RuntimeError: Model diverged with loss = NaN.\n",
        ),
        ("    assert not np.isnan(loss_value), 'Model diverged with loss = NaN'\n", "AssertionError: loss is nan\n"),
        ('[rank0]:     raise ValueError("loss is nan")\n', "[rank0]: ValueError: loss is nan\n"),
    ):
        log = healthy_hf() + 'Traceback (most recent call last):\n  File "train.py", line 9, in step\n' + echo + exc
        (f,) = analyse_bytes(log.encode()).errors
        assert (f.cls, f.line) == ("nan_loss", 24), echo


def test_an_anomaly_warning_whose_forward_trace_header_is_on_the_next_line_names_the_op():
    for op in ("DivBackward0", "SqrtBackward", "LogSoftmaxBackward0"):
        log = healthy_hf() + (
            f"/usr/lib/python3.10/site-packages/torch/autograd/__init__.py:200: UserWarning: Error detected in {op}. \n"
            "Traceback of forward call that caused the error:\n"
            '  File "train.py", line 40, in <module>\n'
        )
        (f,) = analyse_bytes(log.encode()).errors
        assert (f.cls, f.line, f.cause) == ("nan_loss", 21, "numerical_op"), op
        assert f.data["op"] == op
    # not a backward node: an ordinary sentence ending in `Error detected in X.` is no anomaly
    plain = healthy_hf() + "INFO: Error detected in config.\n"
    assert not analyse_bytes(plain.encode()).errors


def test_an_nccl_error_return_on_a_warn_line_is_an_nccl_error_with_the_socket_warning_as_onset():
    log = healthy_hf() + (
        "node7:15:91 [3] include/socket.h 398 NCCL WARN Call to recv failed : Connection reset by peer.\n"
        "node7:15:91 [3] transport.cu:153 NCCL WARN transport.cu:153 ->2 [Proxy thread error]\n"
    )
    (f,) = analyse_bytes(log.encode()).errors
    assert (f.cls, f.line) == ("nccl_error", 21)
    # a WARN alone (no error return) stays weak: no finding on a healthy run
    warn_only = healthy_hf() + "node7:15:91 [3] NCCL WARN Call to recv failed : Connection reset by peer.\n"
    assert not analyse_bytes(warn_only.encode()).errors
