#pragma once
// FlowMatch Euler scheduling as FLUX.2 uses it (diffusers FlowMatchEulerDiscreteScheduler with dynamic shifting and
// the exponential time shift; FLUX2_SPEC.md §2.4). The arithmetic reproduces the reference bit for bit: the input
// sigmas are made in float64 (numpy linspace), cast to float32, shifted with float32 operations (numpy keeps a
// float32 array float32 when combined with Python floats), and mu is a float64 value.
#include <cstdint>
#include <vector>

#include "backend/backend.h"
#include "tensor/tensor.h"

namespace flux2 {

// Resolution- and step-dependent shift of FLUX.2 (diffusers compute_empirical_mu, BFL sampling.py), in float64.
// image_seq_len counts only the target image tokens (reference tokens excluded).
double compute_empirical_mu(int64_t image_seq_len, int num_steps);

// numpy.linspace(1.0, 1/num_steps, num_steps) in float64: the default FLUX.2 input sigmas.
std::vector<double> flux2_default_sigmas(int num_steps);

struct FlowMatchSchedule {
    double mu = 0.0;
    std::vector<float> sigmas;     // num_steps + 1 values; the last is 0
    std::vector<float> timesteps;  // num_steps values, sigma * 1000 (what the reference passes around)

    int num_steps() const { return static_cast<int>(timesteps.size()); }
};

// Exponential time shift of the given input sigmas: s -> e^mu / (e^mu + (1/s - 1)), in float32, then the final 0.
FlowMatchSchedule shift_sigmas(const std::vector<double>& input_sigmas, double mu);

// The FLUX.2 schedule for num_steps steps over image_seq_len target tokens (default sigmas, empirical mu).
FlowMatchSchedule flux2_schedule(int num_steps, int64_t image_seq_len);

// A custom sigma list (one value per step, the final 0 is appended). mu_num_steps is the step count that goes into
// compute_empirical_mu: diffusers uses its num_inference_steps argument there, which stays at its default (50) when
// a caller passes only `sigmas`, so reproducing such a call needs mu_num_steps = 50 rather than sigmas.size().
FlowMatchSchedule flux2_schedule_from_sigmas(const std::vector<double>& sigmas, int64_t image_seq_len,
                                             int mu_num_steps);

// Deterministic Euler update of step `step` on the sampler's state (Backend::euler_update, in float32):
// latents += (sigma[step+1] - sigma[step]) * velocity, where under true CFG (v_neg given) the velocity is
// v_neg + guidance * (velocity - v_neg). latents: an upload_state tensor of `be`; the velocities as the
// transformer's forward returned them there.
void euler_step(Backend& be, Tensor& latents, const Tensor& velocity, const Tensor* v_neg, float guidance,
                const FlowMatchSchedule& schedule, int step);

}  // namespace flux2
