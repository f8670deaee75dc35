"""The built-in hardware classes. Each entry names the sources of its peak figures."""

from __future__ import annotations

from profiles.hardware import _arm_target, _cpu, _x86_target, register

register(_cpu(
    "x86-zen4-2c", "x86_64", 2, _x86_target("znver4", 2), ghz=3.7, flops_per_cycle=32, bw=20.0,
    sources=["AMD EPYC 9R14 (AWS c7a): 3.7 GHz all-core turbo, aws.amazon.com/ec2/instance-types/c7a",
             "Zen 4: 2x256-bit FMA per core = 32 fp32 FLOP/cycle, AMD Zen 4 software optimisation guide"],
))
register(_cpu(
    "arm-cortex-a76-4c", "aarch64", 4, _arm_target("cortex-a76", 4), ghz=2.4, flops_per_cycle=16,
    bw=8.5,
    sources=["Raspberry Pi 5 (BCM2712): 4x Cortex-A76 at 2.4 GHz, raspberrypi.com product brief",
             "Cortex-A76: 2x128-bit FMA = 16 fp32 FLOP/cycle, Arm Cortex-A76 TRM"],
))
