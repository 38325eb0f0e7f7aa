"""Meters: Zeus over fakes at its device layer (GPUs as NVML would report them, RAPL packages), the null meter,
CodeCarbon. The NVML and RAPL readers arena-eval had of its own are gone: these tests go through ZeusMonitor."""

from __future__ import annotations

import pytest

from arena_eval.energy.available import available_meter
from arena_eval.energy.meters import (
    EnergyReading,
    MeterUnavailable,
    NullMeter,
    Window,
    measure_idle_power,
    trapezoid_energy,
)
from arena_eval.energy.zeus_meter import ZeusMeter

pytest.importorskip("zeus", reason="zeus is not installed (pip install 'arena-eval[zeus]')")

# --- fakes at Zeus's device layer ---------------------------------------------------------------------------


class LostError(Exception):
    pass


class FakeGPU:
    def __init__(self, name: str, energy_mj: int | None = 0, power_w: float = 100.0):
        self.name = name
        self.energy_mj = energy_mj  # None: the counter is not supported
        self.power_w = power_w
        self.lost = False

    def get_name(self) -> str:
        return self.name


class FakeGPUs:
    """The slice of zeus.device.gpu.GPUs that ZeusMonitor reads, in its units (mJ, mW)."""

    def __init__(self, gpus: list[FakeGPU]):
        self.gpus = gpus

    def __len__(self) -> int:
        return len(self.gpus)

    def _gpu(self, index: int) -> FakeGPU:
        gpu = self.gpus[index]
        if gpu.lost:
            raise LostError("GPU is lost")
        return gpu

    def supports_get_total_energy_consumption(self, index: int) -> bool:
        return self.gpus[index].energy_mj is not None

    def get_total_energy_consumption(self, index: int) -> int:
        return self._gpu(index).energy_mj

    def get_instant_power_usage(self, index: int) -> int:
        return int(self._gpu(index).power_w * 1000)


class FakeZone:
    def __init__(self, name: str):
        self.name = name


class FakeCPU:
    def __init__(self, name: str, cpu_mj: float = 0.0, dram_mj: float | None = None):
        self.rapl_file = FakeZone(name)
        self.cpu_mj, self.dram_mj = cpu_mj, dram_mj
        self.gone = False


class FakeCPUs:
    """The slice of zeus.device.cpu.CPUs that ZeusMonitor reads (mJ; RAPL's wrap-arounds are Zeus's to count)."""

    def __init__(self, cpus: list[FakeCPU]):
        self.cpus = cpus

    def __len__(self) -> int:
        return len(self.cpus)

    def get_total_energy_consumption(self, index: int):
        from zeus.device.cpu.common import CpuDramMeasurement

        cpu = self.cpus[index]
        if cpu.gone:
            raise FileNotFoundError(f"intel-rapl:{index}/energy_uj")
        return CpuDramMeasurement(cpu_mj=cpu.cpu_mj, dram_mj=cpu.dram_mj)

    def supports_get_dram_energy_consumption(self, index: int) -> bool:
        return self.cpus[index].dram_mj is not None


@pytest.fixture
def devices(monkeypatch):
    """Put fakes where Zeus keeps its device managers; `devices(gpus=[...], cpus=[...])` sets what it finds."""
    import zeus.device.cpu as zeus_cpu
    import zeus.device.gpu as zeus_gpu

    def install(gpus: list[FakeGPU] = (), cpus: list[FakeCPU] = ()):
        monkeypatch.setattr(zeus_gpu, "_gpus", FakeGPUs(list(gpus)))
        monkeypatch.setattr(zeus_cpu, "_cpus", FakeCPUs(list(cpus)))

    install()
    return install


class FakePowerMonitor:
    """Zeus's PowerMonitor (a process polling the GPUs without a counter) as a constant power per GPU."""

    def __init__(self, gpu_indices, update_period=None):
        self.gpu_indices = gpu_indices

    def get_energy(self, start: float, end: float) -> dict[int, float]:
        return {i: 250.0 * (end - start) for i in self.gpu_indices}


def test_nvml_counter_difference_per_device(devices):
    gpus = [FakeGPU("H100", energy_mj=5_000_000), FakeGPU("H100", energy_mj=9_000_000)]
    devices(gpus=gpus)
    meter = ZeusMeter()
    window = meter.start()
    gpus[0].energy_mj += 12_345
    gpus[1].energy_mj += 1_000
    reading = window.stop()
    assert reading.method == "nvml" and reading.is_estimated is False
    assert reading.energy_j == pytest.approx(13.345) and reading.gpu_j == pytest.approx(13.345)
    assert reading.cpu_j is None and reading.ram_j is None and reading.error is None
    assert reading.devices == ["gpu0 (H100)", "gpu1 (H100)"]
    assert reading.tool_version.startswith("zeus ")
    assert reading.started_at <= reading.ended_at and reading.duration_s >= 0
    assert window.stop() is reading  # closing twice returns the same reading


def test_nvml_selected_devices_and_unknown_index(devices):
    devices(gpus=[FakeGPU("A"), FakeGPU("B")])
    assert ZeusMeter(gpus=[1]).devices == ["gpu1 (B)"]
    with pytest.raises(MeterUnavailable, match=r"no GPU with index \[5\]"):
        ZeusMeter(gpus=[5])
    devices(gpus=[])
    with pytest.raises(MeterUnavailable, match="no GPU"):
        ZeusMeter(want="gpu")


def test_trapezoid_energy_by_hand():
    # 0→1 s from 100 to 200 W: 150 J; 1→3 s from 200 to 100 W: 300 J.
    assert trapezoid_energy([0.0, 1.0, 3.0], [100.0, 200.0, 100.0]) == pytest.approx(450.0)
    assert trapezoid_energy([0.0], [100.0]) == 0.0


def test_gpus_without_a_counter_are_zeus_power_polled(devices, monkeypatch):
    import zeus.monitor.energy as zeus_energy

    monkeypatch.setattr(zeus_energy, "PowerMonitor", FakePowerMonitor)
    devices(gpus=[FakeGPU("P100", energy_mj=None), FakeGPU("H100", energy_mj=0)])
    meter = ZeusMeter()
    window = meter.start()
    meter._gpus.gpus[1].energy_mj += 2_000
    reading = window.stop()
    assert reading.method == "nvml-power-poll" and reading.error is None
    # gpu0's 250 W over Zeus's own window time, plus gpu1's counter: 2 J
    assert reading.energy_j == pytest.approx(2.0 + 250.0 * reading.duration_s, rel=0.05)


def test_nvml_device_lost_mid_window_closes_with_error_and_the_run_goes_on(devices):
    gpus = [FakeGPU("A", energy_mj=0), FakeGPU("B", energy_mj=0)]
    devices(gpus=gpus)
    meter = ZeusMeter()
    window = meter.start()
    gpus[0].energy_mj += 1_000
    gpus[1].lost = True
    reading = window.stop()  # no exception
    assert reading.energy_j is None and reading.gpu_j is None
    assert "gpu1 (B)" in reading.error and "GPU is lost" in reading.error and "gpu0" not in reading.error
    # the next window still opens and closes; the lost device keeps reporting its error
    again = meter.start().stop()
    assert again.energy_j is None and "gpu1 (B)" in again.error


# --- RAPL packages through Zeus -------------------------------------------------------------------------------


def test_rapl_package_and_dram(devices):
    cpus = [FakeCPU("package-0", cpu_mj=1_000.0, dram_mj=5_000.0), FakeCPU("psys", cpu_mj=0.0)]
    devices(cpus=cpus)
    meter = available_meter("rapl")
    assert meter.devices == ["package-0", "package-0/dram"]  # psys (the whole platform) would count twice
    window = meter.start()
    cpus[0].cpu_mj += 1_328.85
    cpus[0].dram_mj += 2_500.0
    reading = window.stop()
    assert reading.method == "rapl" and reading.is_estimated is False and reading.error is None
    assert reading.cpu_j == pytest.approx(1.32885)
    assert reading.ram_j == pytest.approx(2.5)
    assert reading.energy_j == pytest.approx(3.82885)
    assert reading.gpu_j is None


def test_rapl_zone_vanishing_mid_window(devices):
    cpus = [FakeCPU("package-0", dram_mj=0.0)]
    devices(cpus=cpus)
    meter = ZeusMeter()
    window = meter.start()
    cpus[0].gone = True
    reading = window.stop()
    assert reading.energy_j is None and reading.cpu_j is None
    assert "package-0" in reading.error and "energy_uj" in reading.error


def test_gpus_first_and_cpus_beside_them_only_when_asked(devices):
    gpus, cpus = [FakeGPU("H100", energy_mj=0)], [FakeCPU("package-0", dram_mj=0.0)]
    devices(gpus=gpus, cpus=cpus)
    assert ZeusMeter().method == "nvml"  # a GPU is metered: the CPU packages only when energy.cpus names them
    both = ZeusMeter(cpus=[0])
    assert both.method == "nvml+rapl"
    window = both.start()
    gpus[0].energy_mj += 3_000
    cpus[0].cpu_mj += 1_000
    cpus[0].dram_mj += 500
    reading = window.stop()
    assert (reading.gpu_j, reading.cpu_j, reading.ram_j) == pytest.approx((3.0, 1.0, 0.5))
    assert reading.energy_j == pytest.approx(4.5)


def test_zeus_with_nothing_to_measure_says_what_it_found(devices):
    with pytest.raises(MeterUnavailable, match=r"Zeus found nothing to measure \(GPUs: no GPU; CPUs: no CPU package\)"):
        available_meter("zeus")


# --- choosing a meter, idle power, the null meter -------------------------------------------------------------


def test_available_meter_prefers_zeus_gpus_then_cpus(devices):
    devices(gpus=[FakeGPU("H100")], cpus=[FakeCPU("package-0")])
    assert available_meter().method == "nvml"
    devices(gpus=[], cpus=[FakeCPU("package-0")])
    assert available_meter().method == "rapl"


def test_available_meter_explicit_kinds(devices):
    assert isinstance(available_meter("none"), NullMeter)
    with pytest.raises(MeterUnavailable, match="no GPU"):
        available_meter("nvml")
    with pytest.raises(MeterUnavailable, match="unknown meter 'gpu'"):
        available_meter("gpu")  # type: ignore[arg-type]


def test_available_meter_auto_never_raises(devices, monkeypatch):
    import arena_eval.energy.codecarbon_meter as cc

    def missing():
        raise MeterUnavailable("codecarbon is not installed")

    monkeypatch.setattr(cc, "_codecarbon_version", missing)
    meter = available_meter()
    assert isinstance(meter, NullMeter)
    assert "zeus: Zeus found nothing to measure" in meter.reason and "codecarbon is not installed" in meter.reason
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
    from arena_eval.energy.meters import gpu_indices

    assert gpu_indices("cuda:0") == [0]
    assert gpu_indices("GPU1") == [1]
    assert gpu_indices("cuda:0,1") == [0, 1]
    assert gpu_indices("3") == [3]
    assert gpu_indices("local") is None and gpu_indices(None) is None
