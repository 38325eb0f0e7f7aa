"""Meters: NVML against a fake pynvml module, RAPL against a fake sysfs tree, the null meter, CodeCarbon."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from arena_eval.energy.available import available_meter
from arena_eval.energy.meters import (
    EnergyReading,
    MeterUnavailable,
    NullMeter,
    Window,
    measure_idle_power,
)
from arena_eval.energy.nvml import NVMLMeter, trapezoid_energy
from arena_eval.energy.rapl import RAPLMeter, counter_delta

# --- a fake pynvml -----------------------------------------------------------------------------------------


class FakeGPU:
    def __init__(self, name: str, energy_mj: int | None = 0, power_w=None):
        self.name = name
        self.energy_mj = energy_mj  # None: the counter is not supported
        self.power_w = power_w or (lambda: 100.0)
        self.lost = False


class FakeNVML:
    """The slice of pynvml that NVMLMeter uses, with the same error classes and units (mJ, mW)."""

    class NVMLError(Exception):
        pass

    class NVMLError_NotSupported(NVMLError):
        pass

    class NVMLError_GPUIsLost(NVMLError):
        pass

    def __init__(self, gpus: list[FakeGPU]):
        self.gpus = gpus
        self.initialised = False

    def nvmlInit(self):
        self.initialised = True

    def nvmlShutdown(self):
        self.initialised = False

    def nvmlSystemGetDriverVersion(self):
        return "550.00"

    def nvmlDeviceGetCount(self):
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, index):
        return self.gpus[index]

    def nvmlDeviceGetName(self, gpu):
        return gpu.name.encode()  # older bindings return bytes

    def _check(self, gpu):
        if gpu.lost:
            raise self.NVMLError_GPUIsLost("GPU is lost")

    def nvmlDeviceGetTotalEnergyConsumption(self, gpu):
        self._check(gpu)
        if gpu.energy_mj is None:
            raise self.NVMLError_NotSupported("Not Supported")
        return gpu.energy_mj

    def nvmlDeviceGetPowerUsage(self, gpu):
        self._check(gpu)
        return int(round(gpu.power_w() * 1000))


class FakeClock:
    """Advances 0.1 s per reading; `now` is the last reading, so a power curve can be a function of it."""

    def __init__(self):
        self.now = -0.1
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            self.now = round(self.now + 0.1, 10)
            return self.now


def test_nvml_counter_difference_per_device():
    gpus = [FakeGPU("H100", energy_mj=5_000_000), FakeGPU("H100", energy_mj=9_000_000)]
    meter = NVMLMeter(nvml=FakeNVML(gpus))
    window = meter.start()
    gpus[0].energy_mj += 12_345
    gpus[1].energy_mj += 1_000
    reading = window.stop()
    assert reading.method == "nvml" and reading.is_estimated is False
    assert reading.energy_j == pytest.approx(13.345) and reading.gpu_j == pytest.approx(13.345)
    assert reading.cpu_j is None and reading.ram_j is None and reading.error is None
    assert reading.devices == ["gpu0 (H100)", "gpu1 (H100)"]
    assert reading.tool_version == "driver 550.00"
    assert reading.started_at <= reading.ended_at and reading.duration_s >= 0
    assert window.stop() is reading  # closing twice returns the same reading


def test_nvml_selected_devices_and_unknown_index():
    gpus = [FakeGPU("A"), FakeGPU("B")]
    assert [d.label for d in NVMLMeter(devices=[1], nvml=FakeNVML(gpus)).devices] == ["gpu1 (B)"]
    with pytest.raises(MeterUnavailable, match=r"no GPU with index \[5\]"):
        NVMLMeter(devices=[5], nvml=FakeNVML(gpus))
    with pytest.raises(MeterUnavailable, match="no GPU"):
        NVMLMeter(nvml=FakeNVML([]))


def test_trapezoid_energy_by_hand():
    # 0→1 s from 100 to 200 W: 150 J; 1→3 s from 200 to 100 W: 300 J.
    assert trapezoid_energy([0.0, 1.0, 3.0], [100.0, 200.0, 100.0]) == pytest.approx(450.0)
    assert trapezoid_energy([0.0], [100.0]) == 0.0


def test_nvml_power_poll_fallback_integrates_a_known_power_curve():
    clock = FakeClock()
    # P(t) = 100 + 50 t W. The trapezoid rule is exact on a straight line, however the samples fall.
    gpu = FakeGPU("P100", energy_mj=None, power_w=lambda: 100.0 + 50.0 * clock.now)
    meter = NVMLMeter(nvml=FakeNVML([gpu]), poll_hz=50, clock=clock)
    with meter.start() as window:
        time.sleep(0.15)  # the sampler thread takes a few samples in between
    reading = window.stop()
    d = reading.duration_s
    assert d >= 0.2  # start, stop, and at least one sample of the thread
    assert reading.method == "nvml-power-poll" and reading.error is None
    assert reading.energy_j == pytest.approx(100.0 * d + 25.0 * d * d, rel=1e-9)


def test_nvml_device_lost_mid_window_closes_with_error_and_the_run_goes_on():
    gpus = [FakeGPU("A", energy_mj=0), FakeGPU("B", energy_mj=0)]
    meter = NVMLMeter(nvml=FakeNVML(gpus))
    window = meter.start()
    gpus[0].energy_mj += 1_000
    gpus[1].lost = True
    reading = window.stop()  # no exception
    assert reading.energy_j is None and reading.gpu_j is None
    assert "gpu1 (B)" in reading.error and "GPU is lost" in reading.error and "gpu0" not in reading.error
    # the next window still opens and closes; the lost device keeps reporting its error
    again = meter.start().stop()
    assert again.energy_j is None and "gpu1 (B)" in again.error


def test_nvml_polled_device_lost_mid_window():
    gpu = FakeGPU("K80", energy_mj=None)
    meter = NVMLMeter(nvml=FakeNVML([gpu]), poll_hz=100)
    window = meter.start()
    time.sleep(0.03)
    gpu.lost = True
    time.sleep(0.03)
    reading = window.stop()
    assert reading.method == "nvml-power-poll"
    assert reading.energy_j is None and "gpu0 (K80)" in reading.error


def test_nvml_init_failure_is_unavailable():
    nvml = FakeNVML([FakeGPU("A")])

    def fail():
        raise FakeNVML.NVMLError("Driver Not Loaded")

    nvml.nvmlInit = fail
    with pytest.raises(MeterUnavailable, match="Driver Not Loaded"):
        NVMLMeter(nvml=nvml)


# --- RAPL against a fake sysfs tree -------------------------------------------------------------------------

MAX_RANGE = 262_143_328_850


def make_domain(folder: Path, name: str, energy_uj: int, max_range: int = MAX_RANGE) -> Path:
    folder.mkdir(parents=True)
    (folder / "name").write_text(name + "\n")
    (folder / "energy_uj").write_text(f"{energy_uj}\n")
    (folder / "max_energy_range_uj").write_text(f"{max_range}\n")
    return folder / "energy_uj"


@pytest.fixture
def powercap(tmp_path: Path) -> dict[str, Path]:
    root = tmp_path / "powercap"
    files = {
        "package": make_domain(root / "intel-rapl:0", "package-0", MAX_RANGE - 328_850),
        "dram": make_domain(root / "intel-rapl:0" / "intel-rapl:0:1", "dram", 5_000_000),
        "core": make_domain(root / "intel-rapl:0" / "intel-rapl:0:0", "core", 0),  # inside the package: ignored
        "psys": make_domain(root / "intel-rapl:1", "psys", 0),  # whole platform: ignored
    }
    files["root"] = root
    return files


def test_rapl_package_and_dram_with_wraparound(powercap):
    meter = RAPLMeter(root=powercap["root"], poll_interval_s=3600)
    assert sorted(d.label for d in meter.domains) == ["package-0", "package-0/dram"]
    window = meter.start()
    powercap["package"].write_text("1000000\n")  # wrapped: 328 850 µJ to the top, then 1 000 000
    powercap["dram"].write_text("7500000\n")
    reading = window.stop()
    assert reading.method == "rapl" and reading.is_estimated is False and reading.error is None
    assert reading.cpu_j == pytest.approx(1.32885)
    assert reading.ram_j == pytest.approx(2.5)
    assert reading.energy_j == pytest.approx(3.82885)
    assert reading.gpu_j is None


def test_rapl_counts_every_wrap_seen_by_the_sampler(powercap):
    meter = RAPLMeter(root=powercap["root"], poll_interval_s=3600)
    window = meter.start()  # package at MAX_RANGE - 328 850
    powercap["package"].write_text("100000000000\n")  # wrapped once
    window.sample()
    powercap["package"].write_text("50000000000\n")  # wrapped again
    reading = window.stop()
    expected_uj = (328_850 + 100_000_000_000) + (MAX_RANGE - 100_000_000_000 + 50_000_000_000)
    assert reading.cpu_j == pytest.approx(expected_uj / 1e6)


def test_counter_delta_by_hand():
    assert counter_delta(10, 25, 100) == 15
    assert counter_delta(90, 5, 100) == 15


def test_rapl_unreadable_counter_is_unavailable(powercap, monkeypatch):
    real_read_text = Path.read_text

    def read_text(self, *args, **kwargs):
        if self.name == "energy_uj":  # as on kernels that keep energy_uj for root (tests may run as root)
            raise PermissionError(13, "Permission denied", str(self))
        return real_read_text(self, *args, **kwargs)

    monkeypatch.setattr(Path, "read_text", read_text)
    with pytest.raises(MeterUnavailable, match="Permission denied"):
        RAPLMeter(root=powercap["root"])
    with pytest.raises(MeterUnavailable):
        available_meter("rapl", rapl_root=str(powercap["root"]))


def test_rapl_missing_tree_is_unavailable(tmp_path):
    with pytest.raises(MeterUnavailable, match="does not exist"):
        RAPLMeter(root=tmp_path / "nothing")


def test_rapl_domain_vanishing_mid_window(powercap):
    meter = RAPLMeter(root=powercap["root"], poll_interval_s=3600)
    window = meter.start()
    powercap["dram"].unlink()
    reading = window.stop()
    assert reading.energy_j is None and reading.ram_j is None
    assert reading.cpu_j is not None  # the package still read
    assert "package-0/dram" in reading.error


# --- choosing a meter, idle power, the null meter -------------------------------------------------------------


def test_available_meter_prefers_nvml_then_rapl(powercap):
    nvml = FakeNVML([FakeGPU("H100")])
    assert isinstance(available_meter(nvml=nvml, rapl_root=str(powercap["root"])), NVMLMeter)
    broken = FakeNVML([])
    assert isinstance(available_meter(nvml=broken, rapl_root=str(powercap["root"])), RAPLMeter)


def test_available_meter_explicit_kinds(tmp_path):
    assert isinstance(available_meter("none"), NullMeter)
    with pytest.raises(MeterUnavailable, match="no GPU"):
        available_meter("nvml", nvml=FakeNVML([]))
    with pytest.raises(MeterUnavailable, match="unknown meter 'gpu'"):
        available_meter("gpu")  # type: ignore[arg-type]


def test_available_meter_auto_never_raises(tmp_path, monkeypatch):
    import arena_eval.energy.codecarbon_meter as cc

    def missing():
        raise MeterUnavailable("codecarbon is not installed")

    monkeypatch.setattr(cc, "_codecarbon_version", missing)
    meter = available_meter(nvml=FakeNVML([]), rapl_root=str(tmp_path / "none"))
    assert isinstance(meter, NullMeter)
    assert "nvml: NVML found no GPU" in meter.reason and "codecarbon is not installed" in meter.reason
    reading = meter.start().stop()
    assert reading.method == "none" and reading.energy_j is None and reading.is_estimated


class ConstantMeter:
    method = "fake"

    def __init__(self, reading: EnergyReading):
        self._reading = reading

    def start(self) -> Window:
        reading = self._reading

        class _W(Window):
            def _close(self) -> EnergyReading:
                return reading

        return _W()


def test_measure_idle_power():
    reading = EnergyReading(method="fake", is_estimated=False, duration_s=2.0, energy_j=50.0)
    assert measure_idle_power(ConstantMeter(reading), 2.0, sleep=lambda s: None) == pytest.approx(25.0)
    assert measure_idle_power(NullMeter(), 0.01) is None
    with pytest.raises(ValueError):
        measure_idle_power(NullMeter(), 0)


# --- CodeCarbon's offline tracker ---------------------------------------------------------------------------


@pytest.mark.slow
def test_codecarbon_meter_short_window_is_estimated_and_writes_nothing(tmp_path, monkeypatch):
    pytest.importorskip("codecarbon", reason="codecarbon is not installed")
    from arena_eval.energy.codecarbon_meter import CodeCarbonMeter

    monkeypatch.chdir(tmp_path)
    meter = CodeCarbonMeter(country_iso_code="FRA")
    with meter.start() as window:
        sum(i * i for i in range(200_000))
    reading = window.stop()
    assert reading.method == "codecarbon" and reading.is_estimated is True
    assert reading.error is None
    assert reading.energy_j is not None and reading.energy_j > 0
    assert reading.tool_version.startswith("codecarbon ")
    assert list(tmp_path.iterdir()) == []  # no emissions.csv or anything else in the working directory


def test_gpu_indices_from_a_contestant_device():
    from arena_eval.energy.nvml import gpu_indices

    assert gpu_indices("cuda:0") == [0]
    assert gpu_indices("GPU1") == [1]
    assert gpu_indices("cuda:0,1") == [0, 1]
    assert gpu_indices("3") == [3]
    assert gpu_indices("local") is None and gpu_indices(None) is None
