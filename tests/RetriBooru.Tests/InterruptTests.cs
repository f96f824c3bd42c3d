using System.Diagnostics;
using System.Text.Json;
using RetriBooru.Cli;
using RetriBooru.Data;
using RetriBooru.Diffusion;
using RetriBooru.Runtime;
using Spectre.Console.Testing;
using Xunit;

namespace RetriBooru.Tests;

/// <summary>An interrupted training run (Ctrl-C, SIGTERM) with the default --checkpoint-every 0 keeps its loss log and a resumable checkpoint.</summary>
public class InterruptTests
{
    static int Lines(string path)
    {
        if (!File.Exists(path)) return 0;
        // The trainer holds the log open for appending; read it without asking for exclusive access.
        using var reader = new StreamReader(new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite));
        return reader.ReadToEnd().Split('\n', StringSplitOptions.RemoveEmptyEntries).Length;
    }

    static long CheckpointStep(string outDir) =>
        JsonSerializer.Deserialize<TrainerState>(File.ReadAllText(Path.Combine(outDir, DiffusionTrainer.CheckpointFolder, DiffusionTrainer.StateFile)), WorkbenchJson.Lines)!.Step;

    [Fact]
    public void A_cancelled_run_has_logged_every_step_as_it_went_and_resumes_to_the_uninterrupted_losses()
    {
        using var dir = new TempDir();
        var data = DiffusionTrainerTests.WriteDataset(dir, 6, size: 16);
        var options = new TrainerOptions { Steps = 5, BatchSize = 2, WarmupSteps = 1, Seed = 3 };
        var full = DiffusionTrainerTests.Train(data, dir.File("full"), options);

        var interrupted = dir.File("interrupted");
        var logPath = Path.Combine(interrupted, DiffusionTrainer.LossLog);
        using var cancellation = new CancellationTokenSource();
        var linesSeen = new List<int>();
        var progress = new SyncProgress<TrainingProgress>(p =>
        {
            linesSeen.Add(Lines(logPath));
            if (p.Step == 1) cancellation.Cancel(); // as Ctrl-C would, during the second step
        });
        var stopped = DiffusionTrainerTests.Train(data, interrupted, options, progress: progress, cancellation: cancellation.Token);

        Assert.False(stopped.Finished);
        Assert.Equal(2, stopped.StepsDone);
        Assert.Equal([1, 2], linesSeen); // each step's line was on disk when the step was reported
        Assert.Equal(2, CheckpointStep(interrupted));
        Assert.False(Directory.Exists(Path.Combine(interrupted, "model")), "an interrupted run exports no final model");

        var resumed = DiffusionTrainerTests.Train(data, interrupted, options, resume: true);
        Assert.True(resumed.Finished);
        Assert.Equal(full.Losses.Skip(2).Select(BitConverter.DoubleToInt64Bits), resumed.Losses.Select(BitConverter.DoubleToInt64Bits));
        Assert.Equal(5, Lines(logPath));
    }

    [Fact]
    public void A_resumed_run_drops_a_loss_line_cut_short_by_a_kill()
    {
        using var dir = new TempDir();
        var data = DiffusionTrainerTests.WriteDataset(dir, 4, size: 16);
        var options = new TrainerOptions { Steps = 3, BatchSize = 2, WarmupSteps = 1, Seed = 3 };
        var outDir = dir.File("run");
        DiffusionTrainerTests.Train(data, outDir, options with { StopAfter = 1 });
        var logPath = Path.Combine(outDir, DiffusionTrainer.LossLog);
        File.AppendAllText(logPath, "{\"step\": 1, \"loss\": 0.5, \"l"); // killed while writing step 1's line
        DiffusionTrainerTests.Train(data, outDir, options, resume: true);
        var steps = File.ReadAllLines(logPath).Select(l => JsonSerializer.Deserialize<LossLogEntry>(l, WorkbenchJson.Lines)!.Step);
        Assert.Equal([0, 1, 2], steps);
    }

    [Fact]
    public async Task Sigint_to_train_base_writes_a_checkpoint_that_resume_continues()
    {
        if (!OperatingSystem.IsLinux()) return;
        using var dir = new TempDir();
        var data = DiffusionTrainerTests.WriteDataset(dir, 4, size: 32);
        var outDir = dir.File("run");
        var cli = Path.Combine(Path.GetDirectoryName(typeof(CliApp).Assembly.Location)!, "RetriBooru.Cli.dll");
        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in new[] { cli, "train-base", "--data", data, "--out", outDir, "--steps", "100000", "--batch", "2", "--warmup", "1", "--log-every", "1" })
            start.ArgumentList.Add(a);
        start.Environment["RETRIBOORU_THREADS"] = "1";
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        try
        {
            var logPath = Path.Combine(outDir, DiffusionTrainer.LossLog);
            var clock = Stopwatch.StartNew();
            while (Lines(logPath) < 3 && !process.HasExited && clock.Elapsed < TimeSpan.FromMinutes(3)) await Task.Delay(100);
            Assert.True(Lines(logPath) >= 3, $"no training steps logged (exited: {process.HasExited})");

            // A process started in the background by a shell without job control (nohup cmd &) has SIGINT ignored, its
            // children inherit that, and .NET keeps an inherited ignore: Ctrl-C cannot reach it. SIGTERM takes the same path.
            string signal = SigintIgnored() ? "-TERM" : "-INT";
            var (killCode, killOutput) = NotebookRunner.Run("kill", [signal, process.Id.ToString()], dir.Path, TimeSpan.FromSeconds(10));
            Assert.True(killCode == 0, killOutput);
            using (var deadline = new CancellationTokenSource(TimeSpan.FromMinutes(2)))
            {
                try { await process.WaitForExitAsync(deadline.Token); }
                catch (OperationCanceledException)
                {
                    // Say how far it got (seen once in a fresh-clone CI at load ~7, never in isolation): kill it, show its output.
                    process.Kill(entireProcessTree: true);
                    Assert.Fail($"train-base did not stop within 2 min of kill {signal} ({Lines(logPath)} loss lines); its output:\n{await stdout}{await stderr}");
                }
            }
            var output = await stdout + await stderr;
            Assert.True(process.ExitCode == 130, $"exit {process.ExitCode}:\n{output}");
            Assert.Contains("stopped", output);

            long step = CheckpointStep(outDir);
            Assert.True(step >= 3, $"checkpoint at step {step}");
            Assert.Equal(step, Lines(logPath));

            var console = new TestConsole().Width(200);
            int code = CliApp.Run(["train-base", "--data", data, "--out", outDir, "--steps", (step + 1).ToString(), "--batch", "2", "--warmup", "1", "--resume"], console);
            Assert.True(code == 0, console.Output);
            Assert.Equal(step + 1, Lines(logPath));
            Assert.True(File.Exists(Path.Combine(outDir, "model", "unet", "diffusion_pytorch_model.safetensors")));
        }
        finally
        {
            if (!process.HasExited) process.Kill(entireProcessTree: true);
        }
    }

    /// <summary>Whether this process ignores SIGINT (signal 2: mask 0x2 of SigIgn in /proc/self/status), which its children inherit.</summary>
    static bool SigintIgnored()
    {
        var line = File.ReadLines("/proc/self/status").FirstOrDefault(l => l.StartsWith("SigIgn:", StringComparison.Ordinal));
        return line is not null && (Convert.ToUInt64(line["SigIgn:".Length..].Trim(), 16) & 0x2) != 0;
    }
}
