// The server's job queue (order, bound, cancellation, drain), image store (ttl, count) and metrics text, with a
// fake runner instead of a model.
#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "server/image_store.h"
#include "server/job_queue.h"
#include "server/metrics.h"

namespace flux2::server {
namespace {

using namespace std::chrono_literals;

// A runner that "denoises" in steps until released, reporting progress and honouring cancellation.
struct FakeRunner {
    std::atomic<bool> release{false};
    std::mutex mutex;
    std::vector<std::string> order;
    void operator()(Job& job) {
        {
            std::lock_guard lock(mutex);
            order.push_back(job.id);
        }
        for (int step = 1;; ++step) {
            job.add_progress({step, 0, 0.0});
            if (job.cancel_requested()) throw JobCancelled{};
            if (release) break;
            std::this_thread::sleep_for(2ms);
        }
        if (job.request.engine.prompt == "fail") throw ApiError(500, "server_error", "x", "", "boom");
        EngineResult r;
        r.width = 16;
        job.finish(r);
    }
};

ImageRequest request(const std::string& prompt = "p") {
    ImageRequest r;
    r.engine.prompt = prompt;
    return r;
}

TEST(JobQueue, RunsInArrivalOrderAndRefusesBeyondTheBound) {
    FakeRunner runner;
    JobQueue queue(2, [&](Job& j) { runner(j); });
    auto a = queue.submit("a", request());
    while (a->state() != JobState::running) std::this_thread::sleep_for(1ms);
    auto b = queue.submit("b", request()), c = queue.submit("c", request());
    EXPECT_EQ(queue.waiting(), 2u);
    try {
        queue.submit("d", request());
        ADD_FAILURE() << "a third waiting job was accepted";
    } catch (const ApiError& e) {
        EXPECT_EQ(e.status, 429);
        EXPECT_EQ(e.code, "queue_full");
        EXPECT_GT(e.retry_after_seconds, 0);
    }
    runner.release = true;
    for (auto& j : {a, b, c}) {
        ASSERT_TRUE(j->wait_done(5s));
        EXPECT_EQ(j->state(), JobState::completed);
        EXPECT_EQ(j->result().width, 16);
    }
    EXPECT_EQ(runner.order, (std::vector<std::string>{"a", "b", "c"}));
    EXPECT_EQ(queue.waiting(), 0u);
}

TEST(JobQueue, CancelsQueuedAndRunningJobs) {
    FakeRunner runner;
    JobQueue queue(4, [&](Job& j) { runner(j); });
    auto running = queue.submit("r", request()), queued = queue.submit("q", request());
    while (running->progress_since(0, 10ms).empty()) {
    }
    queue.cancel(queued);
    EXPECT_EQ(queued->state(), JobState::cancelled);
    EXPECT_EQ(queue.waiting(), 0u);
    queue.cancel(running);
    ASSERT_TRUE(running->wait_done(5s));
    EXPECT_EQ(running->state(), JobState::cancelled);
    EXPECT_EQ(runner.order, (std::vector<std::string>{"r"}));  // the queued one never started
    // The worker goes on with later jobs.
    runner.release = true;
    auto next = queue.submit("n", request());
    ASSERT_TRUE(next->wait_done(5s));
    EXPECT_EQ(next->state(), JobState::completed);
}

TEST(JobQueue, FailuresBecomeErrorsAndDrainWaitsForTheRunningJob) {
    FakeRunner runner;
    JobQueue queue(4, [&](Job& j) { runner(j); });
    auto failing = queue.submit("f", request("fail"));
    runner.release = true;
    ASSERT_TRUE(failing->wait_done(5s));
    EXPECT_EQ(failing->state(), JobState::failed);
    EXPECT_EQ(failing->error().status, 500);

    runner.release = false;
    auto running = queue.submit("r", request()), waiting = queue.submit("w", request());
    while (running->state() != JobState::running) std::this_thread::sleep_for(1ms);
    std::thread releaser([&] {
        std::this_thread::sleep_for(50ms);
        runner.release = true;
    });
    EXPECT_TRUE(queue.close_and_drain(5s));
    releaser.join();
    EXPECT_EQ(running->state(), JobState::completed);
    EXPECT_EQ(waiting->state(), JobState::cancelled);
    try {
        queue.submit("late", request());
        ADD_FAILURE() << "a closed queue accepted a job";
    } catch (const ApiError& e) {
        EXPECT_EQ(e.status, 503);
    }
}

TEST(JobQueue, DrainTimesOutAndCancelsAStuckJob) {
    FakeRunner runner;
    JobQueue queue(1, [&](Job& j) { runner(j); });
    auto running = queue.submit("r", request());
    while (running->state() != JobState::running) std::this_thread::sleep_for(1ms);
    EXPECT_FALSE(queue.close_and_drain(30ms));
    ASSERT_TRUE(running->wait_done(5s));
    EXPECT_EQ(running->state(), JobState::cancelled);
}

TEST(ImageStore, KeepsABoundedNumberForABoundedTime) {
    ImageStore store(std::chrono::seconds(60), 2);
    const std::string a = store.put({{1}, "image/png"}), b = store.put({{2}, "image/png"});
    EXPECT_NE(a, b);
    EXPECT_EQ(a.size(), 4u + 32u);
    ASSERT_TRUE(store.get(a).has_value());
    const std::string c = store.put({{3}, "image/png"});
    EXPECT_FALSE(store.get(a).has_value());  // the oldest went first
    EXPECT_EQ(store.get(c)->bytes, std::vector<uint8_t>{3});
    EXPECT_EQ(store.size(), 2u);
    ImageStore expiring(std::chrono::seconds(0), 4);
    const std::string d = expiring.put({{4}, "image/png"});
    std::this_thread::sleep_for(5ms);
    EXPECT_FALSE(expiring.get(d).has_value());
}

TEST(Metrics, PrometheusTextWithCumulativeBuckets) {
    Metrics m;
    m.count_request("/v1/images/generations", 200, 0.3);
    m.count_request("/v1/images/generations", 200, 7.0);
    m.count_request("/v1/images/generations", 429, 0.001);
    m.observe_step(0.02);
    m.count_images(3);
    m.count_cancelled();
    LiveGauges live;
    live.queue_depth = 2;
    live.ready = true;
    const std::string text = m.render(live);
    auto has = [&](const std::string& line) { return text.find(line + "\n") != std::string::npos; };
    EXPECT_TRUE(has(R"(flux2_requests_total{endpoint="/v1/images/generations",status="200"} 2)")) << text;
    EXPECT_TRUE(has(R"(flux2_requests_total{endpoint="/v1/images/generations",status="429"} 1)"));
    EXPECT_TRUE(has(R"(flux2_request_duration_seconds_bucket{endpoint="/v1/images/generations",le="0.5"} 2)"));
    EXPECT_TRUE(has(R"(flux2_request_duration_seconds_bucket{endpoint="/v1/images/generations",le="5"} 2)"));
    EXPECT_TRUE(has(R"(flux2_request_duration_seconds_bucket{endpoint="/v1/images/generations",le="+Inf"} 3)"));
    EXPECT_TRUE(has(R"(flux2_request_duration_seconds_count{endpoint="/v1/images/generations"} 3)"));
    EXPECT_TRUE(has(R"(flux2_step_duration_seconds_bucket{le="0.025"} 1)"));
    EXPECT_TRUE(has("flux2_queue_depth 2"));
    EXPECT_TRUE(has("flux2_images_generated_total 3"));
    EXPECT_TRUE(has("flux2_jobs_cancelled_total 1"));
    EXPECT_TRUE(has("flux2_ready 1"));
}

}  // namespace
}  // namespace flux2::server
