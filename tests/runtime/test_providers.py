"""Provider choice: TensorRT -> CUDA -> CPU, skipping what is not installed.

This machine has no GPU, so the GPU cases pass in a stand-in list of
"available" providers (what onnxruntime-gpu would report) and check the
options we would hand ONNX Runtime. Creating a real TensorRT session is not
tested here.
"""

from __future__ import annotations


import onnxruntime as ort

from edgetl.runtime import providers as p

SHA = "ab" * 32


def names(chosen):
    return [c if isinstance(c, str) else c[0] for c in chosen]


def test_cpu_only_machine_skips_gpu_providers_in_one_line(tmp_path):
    chosen, line = p.choose_providers(["tensorrt", "cuda", "cpu"], ["CPUExecutionProvider"], tmp_path, SHA)
    assert names(chosen) == ["CPUExecutionProvider"]
    assert line == "onnxruntime providers: CPUExecutionProvider (not installed, skipped: TensorrtExecutionProvider, CUDAExecutionProvider)"


def test_gpu_machine_gets_tensorrt_fp16_with_caches_in_the_store(tmp_path):
    available = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]  # stand-in for a GPU box
    chosen, line = p.choose_providers(["tensorrt", "cuda", "cpu"], available, tmp_path, SHA)
    assert names(chosen) == available and "skipped" not in line
    options = chosen[0][1]
    assert options["trt_fp16_enable"] and options["trt_engine_cache_enable"] and options["trt_timing_cache_enable"]
    cache = options["trt_engine_cache_path"]
    assert cache.startswith(str(tmp_path)) and cache == options["trt_timing_cache_path"]
    assert SHA[:16] in cache and f"trt{p.tensorrt_version()}" in cache
    assert "trt_int8_enable" not in options  # a float model
    # A quantized (QDQ) model turns on TensorRT's INT8 mode; its scales are in the model, so no calibration table.
    int8 = p.choose_providers(["tensorrt"], available, tmp_path, SHA, int8=True)[0][0][1]
    assert int8["trt_int8_enable"] and "trt_int8_calibration_table_name" not in int8


def test_trt_cache_is_keyed_by_model_trt_version_and_gpu(tmp_path, monkeypatch):
    base = p.trt_cache_dir(tmp_path, SHA)
    assert p.trt_cache_dir(tmp_path, "cd" * 32) != base
    monkeypatch.setattr(p, "tensorrt_version", lambda: "99.1")
    assert p.trt_cache_dir(tmp_path, SHA) != base
    monkeypatch.setattr(p, "gpu_identity", lambda: "NVIDIA Jetson Orin sm87")
    assert "Jetson_Orin_sm87" in p.trt_cache_dir(tmp_path, SHA).name


def test_cpu_is_always_the_floor(tmp_path):
    chosen, _ = p.choose_providers(["cuda"], ["CUDAExecutionProvider", "CPUExecutionProvider"], tmp_path, SHA)
    assert names(chosen) == ["CUDAExecutionProvider", "CPUExecutionProvider"]


def test_full_provider_names_pass_through(tmp_path):
    chosen, _ = p.choose_providers(["OpenVINOExecutionProvider", "cpu"], ["OpenVINOExecutionProvider", "CPUExecutionProvider"], tmp_path, SHA)
    assert names(chosen) == ["OpenVINOExecutionProvider", "CPUExecutionProvider"]


def test_real_session_runs_on_cpu_here(server):
    """The real session on this machine (no GPU): CPU."""
    lite0 = server.server.engine.batchers["efficientnet_lite0"].session
    assert lite0.providers == ["CPUExecutionProvider"]
    assert "CPUExecutionProvider" in ort.get_available_providers()


def test_thread_counts_reach_the_session(server_factory):
    s = server_factory(intra_op_threads=1)
    session = s.server.engine.batchers["efficientnet_lite0"].session.session
    assert session.get_session_options().intra_op_num_threads == 1
