#include "pipeline/scheduler.h"

#include <cmath>

#include "core/error.h"

namespace flux2 {

double compute_empirical_mu(int64_t image_seq_len, int num_steps) {
    check(image_seq_len > 0, "compute_empirical_mu: image_seq_len must be positive, got ", image_seq_len);
    check(num_steps > 0, "compute_empirical_mu: num_steps must be positive, got ", num_steps);
    // Two fitted lines (mu at 10 and at 200 steps as functions of the token count), interpolated in the step count;
    // above 4300 tokens the 200-step line is used alone. Constants from the reference, float64 throughout.
    const double a1 = 8.73809524e-05, b1 = 1.89833333;
    const double a2 = 0.00016927, b2 = 0.45666666;
    const double len = static_cast<double>(image_seq_len);
    if (image_seq_len > 4300) return a2 * len + b2;
    const double m_200 = a2 * len + b2;
    const double m_10 = a1 * len + b1;
    const double a = (m_200 - m_10) / 190.0;
    const double b = m_200 - 200.0 * a;
    return a * static_cast<double>(num_steps) + b;
}

std::vector<double> flux2_default_sigmas(int num_steps) {
    check(num_steps > 0, "number of steps must be positive, got ", num_steps);
    const double start = 1.0, stop = 1.0 / num_steps;
    if (num_steps == 1) return {start};
    // numpy.linspace: i * step + start with step = (stop - start) / (num - 1), and the last value set to stop.
    const double step = (stop - start) / (num_steps - 1);
    std::vector<double> sigmas(num_steps);
    for (int i = 0; i < num_steps; ++i) sigmas[i] = static_cast<double>(i) * step + start;
    sigmas.back() = stop;
    return sigmas;
}

FlowMatchSchedule shift_sigmas(const std::vector<double>& input_sigmas, double mu) {
    check(!input_sigmas.empty(), "a sigma schedule needs at least one value");
    check(std::isfinite(mu), "time shift mu must be finite, got ", mu);
    FlowMatchSchedule schedule;
    schedule.mu = mu;
    // Python's math.exp(mu) is a float64 that numpy rounds to float32 when it meets the float32 sigma array.
    const float exp_mu = static_cast<float>(std::exp(mu));
    for (size_t i = 0; i < input_sigmas.size(); ++i) {
        const double s = input_sigmas[i];
        check(std::isfinite(s) && s > 0.0 && s <= 1.0, "sigma ", i, " is ", s, "; sigmas must lie in (0, 1]");
        const float t = static_cast<float>(s);
        const float odds = 1.0f / t - 1.0f;  // (1/t - 1) ** 1.0 is exact in float32
        const float sigma = exp_mu / (exp_mu + odds);
        schedule.sigmas.push_back(sigma);
        schedule.timesteps.push_back(sigma * 1000.0f);
    }
    schedule.sigmas.push_back(0.0f);
    return schedule;
}

FlowMatchSchedule flux2_schedule(int num_steps, int64_t image_seq_len) {
    return shift_sigmas(flux2_default_sigmas(num_steps), compute_empirical_mu(image_seq_len, num_steps));
}

FlowMatchSchedule flux2_schedule_from_sigmas(const std::vector<double>& sigmas, int64_t image_seq_len,
                                             int mu_num_steps) {
    return shift_sigmas(sigmas, compute_empirical_mu(image_seq_len, mu_num_steps));
}

void euler_step(Backend& be, Tensor& latents, const Tensor& velocity, const Tensor* v_neg, float guidance,
                const FlowMatchSchedule& schedule, int step) {
    check(step >= 0 && step < schedule.num_steps(), "euler_step: step ", step, " outside the schedule of ",
          schedule.num_steps(), " steps");
    be.euler_update(latents, velocity, v_neg, guidance, schedule.sigmas[step + 1] - schedule.sigmas[step]);
}

}  // namespace flux2
