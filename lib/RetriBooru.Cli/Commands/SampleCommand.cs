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
    public sealed class Settings : CommandSettings
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

        [CommandOption("--steps <N>")]
        [DefaultValue(25)]
        public int Steps { get; init; } = 25;

        [CommandOption("--text-scale <S>")]
        [DefaultValue(3.0)]
        public double TextScale { get; init; } = 3.0;

        [CommandOption("--reference-scale <S>")]
        [DefaultValue(2.0)]
        public double ReferenceScale { get; init; } = 2.0;

        [CommandOption("--seed <N>")]
        [DefaultValue(0L)]
        public long Seed { get; init; }

        [CommandOption("--out <DIR>")]
        public string Out { get; init; } = "";

        [CommandOption("--overwrite")]
        [Description("Replace the earlier samples in OUT: the new ones are written to OUT.new and swapped in when all are written.")]
        public bool Overwrite { get; init; }

        [CommandOption("--threads <N>")]
        [Description("Intra-op threads, fixed for reproducibility (default: the machine's cores; training splits each batch across them, one libtorch thread per part, and OpenMP waits passively so a busy machine does not collapse).")]
        public int Threads { get; init; } = TorchRuntime.DefaultThreads;

        public override ValidationResult Validate()
        {
            if (string.IsNullOrWhiteSpace(Checkpoint)) return ValidationResult.Error("--checkpoint is required");
            if (string.IsNullOrWhiteSpace(Out)) return ValidationResult.Error("--out is required");
            if (Count < 1) return ValidationResult.Error("--count must be at least 1");
            foreach (var r in References)
            {
                if (!r.Contains('=')) return ValidationResult.Error($"--reference '{r}': write CONCEPT=PATH, e.g. face=face.png");
                var concept = r[..r.IndexOf('=')];
                if (!Concepts.All.Contains(concept))
                    return ValidationResult.Error($"--reference '{r}': unknown concept word '{concept}'{DidYouMean.Hint(concept, Concepts.All)}; reference models know {string.Join(", ", Concepts.All)}");
            }
            return ValidationResult.Success();
        }
    }

    public override int Execute(CommandContext context, Settings settings, CancellationToken cancellationToken)
    {
        TorchRuntime.SetDeterministic(true, settings.Threads);
        using var output = OutputFolderConsole.Open(console, settings.Out, resume: false, settings.Overwrite);
        var (model, branch) = ReferenceModelStore.Load(settings.Checkpoint);
        using (model)
        {
            var references = settings.References.Select(r =>
            {
                var (concept, path) = (r[..r.IndexOf('=')], r[(r.IndexOf('=') + 1)..]);
                return new ReferenceCrop(ImageTensor.Load(path, model.Config.ImageSize), concept, Path.GetFileNameWithoutExtension(path));
            }).ToList();
            var options = new ReferenceSamplingOptions { Steps = settings.Steps, TextScale = settings.TextScale, ReferenceScale = settings.ReferenceScale, Seed = settings.Seed };
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
