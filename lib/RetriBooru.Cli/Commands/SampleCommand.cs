using RetriBooru.Settings;
using RetriBooru.Metrics;
using System.ComponentModel;
using RetriBooru.Data;
using RetriBooru.Diffusion;
using RetriBooru.Imaging;
using RetriBooru.Runtime;
using Spectre.Console;
using Spectre.Console.Cli;
using static TorchSharp.torch;

namespace RetriBooru.Cli.Commands;

public sealed class SampleCommand(IAnsiConsole console) : Command<SampleCommand.Settings>
{
    public sealed class Settings : ReferenceSamplingSettings
    {
        [CommandOption("--checkpoint <DIR>")]
        [Description("A trained reference model (train's OUT/model).")]
        public string Checkpoint { get; init; } = "";

        [CommandOption("--reference <CONCEPT=PATH>")]
        [Description("A reference image with its concept word, e.g. face=crops/000012_face.png (repeatable).")]
        public string[] References { get; init; } = [];

        [CommandOption("--prompt <TAGS>")]
        [DefaultValue("")]
        public string Prompt { get; init; } = "";

        [CommandOption("--count <N>")]
        [DefaultValue(4)]
        public int Count { get; init; } = 4;

        /// <summary>The sampling settings given (the evaluation protocol's defaults for the rest).</summary>
        public EvaluationSettings Sampling() => SettingsBinder.Bind<EvaluationSettings>(this);

        public override ValidationResult Validate()
        {
            if (string.IsNullOrWhiteSpace(Checkpoint)) return ValidationResult.Error("--checkpoint is required");
            if (Count < 1) return ValidationResult.Error("--count must be at least 1");
            foreach (var r in References)
            {
                if (!r.Contains('=')) return ValidationResult.Error($"--reference '{r}': write CONCEPT=PATH, e.g. face=face.png");
                if (!SettingsBinder.TryWord<Concept>($"--reference '{r}'", r[..r.IndexOf('=')], out _, out var problem)) return ValidationResult.Error(problem);
            }
            var problems = Sampling().Problems(f => f.Flag);
            return problems.Count > 0 ? SettingsBinder.Result(problems) : base.Validate();
        }
    }

    public override int Execute(CommandContext context, Settings settings, CancellationToken cancellationToken)
    {
        TorchRuntime.SetDeterministic(true, settings.Threads);
        using var output = OutputFolderConsole.Open(console, settings.Out, resume: false, settings.Overwrite);
        var (model, branch) = ReferenceModelStore.Load(settings.Checkpoint, TorchRuntime.ResolveDevice(settings.Device));
        using (model)
        {
            var references = settings.References.Select(r =>
            {
                var (concept, path) = (Words.Parse<Concept>(r[..r.IndexOf('=')]), r[(r.IndexOf('=') + 1)..]);
                return new ReferenceCrop(ImageTensor.Load(path, model.Config.ImageSize), concept, Path.GetFileNameWithoutExtension(path));
            }).ToList();
            var options = settings.Sampling().Sampling(settings.Seed);
            using var scope = NewDisposeScope();
            var images = ReferenceSampler.Generate(model, branch, Enumerable.Repeat(settings.Prompt, settings.Count).ToList(),
                Enumerable.Repeat((IReadOnlyList<ReferenceCrop>)references, settings.Count).ToList(), options);
            var names = Enumerable.Range(0, settings.Count).Select(i => $"sample_{settings.Seed}_{i:D3}.png").ToList();
            output.Complete(dir => { for (int i = 0; i < names.Count; i++) ImageTensor.SavePng(images[i], Path.Combine(dir, names[i])); });
            foreach (var name in names) console.MarkupLine($"wrote {Markup.Escape(Path.Combine(output.Path, name))}");
            foreach (var r in references) r.Image.Dispose();
        }
        return ExitCodes.Ok;
    }
}
