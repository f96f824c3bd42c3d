using System.ComponentModel;
using RetriBooru.Diffusion;
using RetriBooru.Runtime;
using Spectre.Console;
using Spectre.Console.Cli;

namespace RetriBooru.Cli.Commands;

/// <summary>Issue #5's benchmark: reference-model training steps against the base U-Net step, in one run (figures, not a test).</summary>
public sealed class StepBenchmarkCommand(IAnsiConsole console) : Command<StepBenchmarkCommand.Settings>
{
    public sealed class Settings : CommandSettings
    {
        [CommandOption("--config <NAME>")]
        [DefaultValue("tiny")]
        public string Config { get; init; } = "tiny";

        [CommandOption("--batch <N>")]
        [DefaultValue(16)]
        public int Batch { get; init; } = 16;

        [CommandOption("--steps <N>")]
        [Description("Training steps per model (the first is timed apart).")]
        [DefaultValue(50)]
        public int Steps { get; init; } = 50;

        [CommandOption("--references <N>")]
        [Description("References per example, half face and half clothes.")]
        [DefaultValue(4)]
        public int References { get; init; } = 4;

        [CommandOption("--models <LIST>")]
        [Description("Comma-separated reference models to time after the base step: retrinet, controlnet, ipadapter, text-only.")]
        [DefaultValue("retrinet")]
        public string Models { get; init; } = "retrinet";

        [CommandOption("--threads <N>")]
        [Description("Intra-op threads, fixed for reproducibility (default: the machine's cores; training splits each batch across them, one libtorch thread per part, and OpenMP waits passively so a busy machine does not collapse).")]
        public int Threads { get; init; } = TorchRuntime.DefaultThreads;

        [CommandOption("--seed <N>")]
        [DefaultValue(0L)]
        public long Seed { get; init; }

        public override ValidationResult Validate() =>
            Steps < 2 ? ValidationResult.Error("--steps must be at least 2")
            : Batch < 1 ? ValidationResult.Error("--batch must be at least 1")
            : References < 1 ? ValidationResult.Error("--references must be at least 1")
            : ValidationResult.Success();
    }

    public override int Execute(CommandContext context, Settings settings, CancellationToken cancellationToken)
    {
        TorchRuntime.SetDeterministic(true, settings.Threads);
        var options = new StepBenchmark.Options
        {
            Config = settings.Config, BatchSize = settings.Batch, Steps = settings.Steps, References = settings.References, Seed = settings.Seed,
            Models = settings.Models.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries),
        };
        console.MarkupLine($"step benchmark: config {settings.Config}, batch {settings.Batch}, {settings.Steps} steps per model, {settings.References} references, " +
                           $"{settings.Threads} thread(s), seed {settings.Seed}");
        var phases = StepBenchmark.Run(options, new SyncProgress<string>(m => console.MarkupLine(Markup.Escape(m))), cancellationToken);
        var table = new Table().AddColumns("model", "loop", "threads", "shards", "trainable", "refs", "steps/s", "img/s", "wait ms", "GFLOP/step", "GFLOP/s", "MFU", "step vs base", "1st step s", "peak MiB", "loss");
        var baseline = phases.Last(p => p.Model == "base");
        foreach (var p in phases)
            table.AddRow(p.Model, p.Loop, p.Threads.ToString(), p.Shards.ToString(), p.TrainableParameters.ToString("N0"), p.References.ToString(), p.StepsPerSecond.ToString("F2"),
                (p.StepsPerSecond * p.BatchSize).ToString("F1"), p.DataWaitMs.ToString("F2"), p.GflopPerStep.ToString("F2"), p.AchievedGflops.ToString("F1"), p.Mfu.ToString("P0"),
                (baseline.StepsPerSecond / p.StepsPerSecond).ToString("F2") + "x",
                p.FirstStepSeconds.ToString("F2"), p.PeakRssMiB.ToString("F0"), p.FinalLoss.ToString("F4"));
        console.Write(table);
        var bare = phases.First(p => p.Loop == "bare");
        var single = phases.First(p => p.Model == "base" && p.Loop == "trainer");
        console.MarkupLine($"trainer vs bare loop (1 thread): {single.StepsPerSecond / bare.StepsPerSecond:P0} of the bare loop's rate; " +
                           $"{baseline.Threads} threads vs 1: {baseline.StepsPerSecond / single.StepsPerSecond:F2}x; load average {Markup.Escape(File.ReadAllText("/proc/loadavg").Trim())}");
        console.MarkupLine($"MFU: achieved GFLOP/s (FLOPs counted from the module graph: convolutions, linears, attention matmuls; trained layers x3 for the backward, frozen x1) " +
                           $"over the fp32 1024x1024 matmul rate measured in this process at the phase's thread count ({string.Join(", ", phases.Select(p => (p.Threads, p.PeakGflops)).Distinct().Select(t => $"{t.Threads} thread(s): {t.PeakGflops:F1} GFLOP/s"))}).");
        console.MarkupLine("Steps/s count steps after the first. Peak RSS is the largest resident set seen after any step of a phase; phases run one after the other in this process, so later phases include what earlier ones left allocated.");
        return ExitCodes.Ok;
    }
}
