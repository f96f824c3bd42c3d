using RetriBooru.Settings;
using System.ComponentModel;
using RetriBooru.Diffusion;
using RetriBooru.Imaging;
using RetriBooru.Runtime;
using RetriBooru.Weights;
using Spectre.Console;
using Spectre.Console.Cli;
using static TorchSharp.torch;

namespace RetriBooru.Cli.Commands;

public sealed class SampleBaseCommand(IAnsiConsole console) : Command<SampleBaseCommand.Settings>
{
    public sealed class Settings : OutputSettings
    {
        [CommandOption("--model <PATH>")]
        [Description("A diffusers-layout model folder (e.g. OUT/model of train-base, or an SD1.5 folder) or a single-file .safetensors checkpoint.")]
        public string Model { get; init; } = "";

        [CommandOption("--prompt <TAGS>")]
        public string Prompt { get; init; } = "";

        [CommandOption("--count <N>")]
        [DefaultValue(4)]
        public int Count { get; init; } = 4;

        [CommandOption("--sampling-steps|--steps <N>"), SettingHelp(typeof(SamplingOptions), nameof(SamplingOptions.Steps))]
        public int? SamplingSteps { get; init; }

        [CommandOption("--text-guidance|--guidance <SCALE>"), SettingHelp(typeof(SamplingOptions), nameof(SamplingOptions.GuidanceScale))]
        public double? TextGuidance { get; init; }

        [CommandOption("--eta <ETA>"), SettingHelp(typeof(SamplingOptions), nameof(SamplingOptions.Eta))]
        public double? Eta { get; init; }

        /// <summary>The sampling settings given (the record's defaults for the rest).</summary>
        public SamplingOptions Sampling() => SettingsBinder.Bind<SamplingOptions>(this) with { Seed = Seed };

        [CommandOption("--tokenizer <DIR>")]
        [Description("Tokenizer folder for single-file SD checkpoints.")]
        public string? Tokenizer { get; init; }

        public override ValidationResult Validate() =>
            string.IsNullOrWhiteSpace(Model) ? ValidationResult.Error("--model is required")
            : Count < 1 ? ValidationResult.Error("--count must be at least 1")
            : SettingFields.RangeProblems(Sampling(), f => f.Flag) is { Count: > 0 } problems ? SettingsBinder.Result(problems)
            : base.Validate();
    }

    public override int Execute(CommandContext context, Settings settings, CancellationToken cancellationToken)
    {
        TorchRuntime.SetDeterministic(true, settings.Threads);
        var device = TorchRuntime.ResolveDevice(settings.Device);
        using var output = OutputFolderConsole.Open(console, settings.Out, resume: false, settings.Overwrite);
        using var model = File.Exists(settings.Model)
            ? ModelStore.LoadSingleFile(settings.Model, tokenizerDir: settings.Tokenizer, device: device)
            : ModelStore.LoadDiffusers(settings.Model, device);
        var options = settings.Sampling();
        var started = DateTime.UtcNow;
        using var images = TextToImage.Generate(model, Enumerable.Repeat(settings.Prompt, settings.Count).ToList(), options);
        var names = Enumerable.Range(0, settings.Count).Select(i => $"sample-{settings.Seed}-{i:D2}.png").ToList();
        output.Complete(dir =>
        {
            for (int i = 0; i < names.Count; i++)
            {
                using var image = images[i];
                ImageTensor.SavePng(image, Path.Combine(dir, names[i]));
            }
        });
        foreach (var name in names) console.MarkupLine($"wrote {Markup.Escape(Path.Combine(output.Path, name))}");
        console.MarkupLine($"{settings.Count} images, {options.Steps} DDIM steps, guidance {options.GuidanceScale}, seed {settings.Seed}: {(DateTime.UtcNow - started).TotalSeconds:F1} s");
        return ExitCodes.Ok;
    }
}
