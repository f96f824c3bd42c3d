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

        [CommandOption("--steps <N>")]
        [DefaultValue(50)]
        public int Steps { get; init; } = 50;

        [CommandOption("--guidance <SCALE>")]
        [DefaultValue(3.0)]
        public double Guidance { get; init; } = 3.0;

        [CommandOption("--eta <ETA>")]
        [DefaultValue(0.0)]
        public double Eta { get; init; }

        [CommandOption("--tokenizer <DIR>")]
        [Description("Tokenizer folder for single-file SD checkpoints.")]
        public string? Tokenizer { get; init; }

        public override ValidationResult Validate() =>
            string.IsNullOrWhiteSpace(Model) ? ValidationResult.Error("--model is required")
            : Count < 1 ? ValidationResult.Error("--count must be at least 1")
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
        var options = new SamplingOptions { Steps = settings.Steps, GuidanceScale = settings.Guidance, Eta = settings.Eta, Seed = settings.Seed };
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
        console.MarkupLine($"{settings.Count} images, {settings.Steps} DDIM steps, guidance {settings.Guidance}, seed {settings.Seed}: {(DateTime.UtcNow - started).TotalSeconds:F1} s");
        return ExitCodes.Ok;
    }
}
