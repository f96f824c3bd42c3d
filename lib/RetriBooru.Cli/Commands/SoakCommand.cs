using System.ComponentModel;
using RetriBooru.Diffusion;
using RetriBooru.Runtime;
using Spectre.Console;
using Spectre.Console.Cli;

namespace RetriBooru.Cli.Commands;

/// <summary>
/// Runs the training and sampling hot paths for a long time under constant garbage collections and counts failures
/// (the implicit-Scalar race). Run it as <c>DOTNET_GCgen0size=0x10000 retribooru model soak</c>; exit 1 when anything failed.
/// </summary>
public sealed class SoakCommand(IAnsiConsole console) : Command<SoakCommand.Settings>
{
    public sealed class Settings : CommandSettings
    {
        [CommandOption("--config <NAME>")]
        [DefaultValue("tiny")]
        public string Config { get; init; } = "tiny";

        [CommandOption("--steps <N>")]
        [Description("Training steps, half base model and half RetriNet.")]
        [DefaultValue(20_000)]
        public int Steps { get; init; } = 20_000;

        [CommandOption("--samples <N>")]
        [Description("Images sampled, half text-to-image and half with references.")]
        [DefaultValue(2_000)]
        public int Samples { get; init; } = 2_000;

        [CommandOption("--batch <N>")]
        [DefaultValue(2)]
        public int Batch { get; init; } = 2;

        [CommandOption("--sample-steps <N>")]
        [Description("DDIM steps per sample.")]
        [DefaultValue(10)]
        public int SampleSteps { get; init; } = 10;

        [CommandOption("--no-gc-storm")]
        [Description("Do not force a gen-0 collection every millisecond (DOTNET_GCgen0size still applies).")]
        public bool NoGcStorm { get; init; }

        [CommandOption("--threads <N>")]
        [DefaultValue(1)]
        public int Threads { get; init; } = 1;

        [CommandOption("--seed <N>")]
        [DefaultValue(0L)]
        public long Seed { get; init; }

        public override ValidationResult Validate() =>
            Steps < 2 ? ValidationResult.Error("--steps must be at least 2")
            : Samples < 2 ? ValidationResult.Error("--samples must be at least 2")
            : Batch is < 1 or > 64 ? ValidationResult.Error("--batch must be in [1, 64]")
            : SampleSteps is < 1 or > 1000 ? ValidationResult.Error("--sample-steps must be in [1, 1000]")
            : ValidationResult.Success();
    }

    public override int Execute(CommandContext context, Settings settings, CancellationToken cancellationToken)
    {
        TorchRuntime.SetDeterministic(true, settings.Threads);
        var gen0Size = Environment.GetEnvironmentVariable("DOTNET_GCgen0size");
        console.MarkupLine($"soak: config {Markup.Escape(settings.Config)}, {settings.Steps} training steps, {settings.Samples} samples, batch {settings.Batch}, " +
                           $"GC storm {(settings.NoGcStorm ? "off" : "on")}, DOTNET_GCgen0size={Markup.Escape(gen0Size ?? "unset")}");
        using var interrupt = new InterruptSignal(cancellationToken);
        var result = SoakBenchmark.Run(new SoakBenchmark.Options
        {
            Config = settings.Config, Steps = settings.Steps, Samples = settings.Samples, BatchSize = settings.Batch, SampleSteps = settings.SampleSteps,
            GcStorm = !settings.NoGcStorm, Seed = settings.Seed,
        }, new SyncProgress<string>(m => console.MarkupLine(Markup.Escape(m))), interrupt.Token);
        foreach (var failure in result.Failures.Take(20)) console.MarkupLine($"[red]failure[/] {Markup.Escape(failure)}");
        console.MarkupLine($"soak finished: {result.TrainingSteps} training steps, {result.Samples} samples, {result.Failures.Count} failures, " +
                           $"{result.Gen0Collections:N0} gen-0 and {result.Gen2Collections:N0} gen-2 collections, {result.Seconds:F0} s");
        return result.Failures.Count == 0 ? ExitCodes.Ok : ExitCodes.Failure;
    }
}
