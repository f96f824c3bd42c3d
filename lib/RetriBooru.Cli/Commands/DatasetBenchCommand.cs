using System.ComponentModel;
using System.Diagnostics;
using RetriBooru.Data;
using RetriBooru.Data.Ingest;
using RetriBooru.Data.Synth;
using Spectre.Console;
using Spectre.Console.Cli;

namespace RetriBooru.Cli.Commands;

/// <summary>Measures synthetic generation and ingestion throughput (a benchmark that prints figures, not a test).</summary>
public sealed class DatasetBenchCommand(IAnsiConsole console) : Command<DatasetBenchCommand.Settings>
{
    public sealed class Settings : CommandSettings
    {
        [CommandOption("--images <N>")]
        [Description("Images to generate and ingest (default 2000).")]
        [DefaultValue(2000)]
        public int Images { get; init; } = 2000;

        [CommandOption("--size <PX>")]
        [Description("Image side in pixels (default 64).")]
        [DefaultValue(64)]
        public int Size { get; init; } = 64;

        [CommandOption("--seed <S>")]
        [DefaultValue(1234L)]
        public long Seed { get; init; } = 1234;

        [CommandOption("--keep <DIR>")]
        [Description("Write into DIR and keep it (default: a temporary folder, deleted afterwards).")]
        public string? Keep { get; init; }

        public override ValidationResult Validate() =>
            Images < 20 ? ValidationResult.Error("--images must be at least 20") : ValidationResult.Success();
    }

    public override int Execute(CommandContext context, Settings settings, CancellationToken cancellationToken)
    {
        const int imagesPerCharacter = 25;
        int characters = Math.Max(1, (int)Math.Round(settings.Images / (double)imagesPerCharacter));
        var synth = new SynthOptions { Characters = characters, ImagesPerCharacter = Math.Max(2, settings.Images / characters), Size = settings.Size, Seed = settings.Seed };
        int total = synth.Characters * synth.ImagesPerCharacter;
        var dir = settings.Keep ?? Path.Combine(Path.GetTempPath(), "retribooru-bench-" + Guid.NewGuid().ToString("N"));
        try
        {
            var sourceDir = Path.Combine(dir, SynthDataset.SourceFolder);
            var generate = Stopwatch.StartNew();
            SynthGenerator.Generate(sourceDir, synth, cancellationToken: cancellationToken);
            generate.Stop();
            var build = Stopwatch.StartNew();
            var result = DatasetBuilder.Build(sourceDir, dir, new BuildOptions { Seed = settings.Seed }, cancellationToken: cancellationToken);
            build.Stop();

            var table = new Table().Title($"dataset bench: {total:N0} images at {settings.Size} px, {Environment.ProcessorCount} cores")
                .AddColumn("stage").AddColumn(new TableColumn("seconds").RightAligned()).AddColumn(new TableColumn("images/s").RightAligned());
            table.AddRow("generate (synth source)", $"{generate.Elapsed.TotalSeconds:F2}", $"{total / generate.Elapsed.TotalSeconds:F0}");
            table.AddRow("build (ingest, index, retrieve, crops, manifest)", $"{build.Elapsed.TotalSeconds:F2}", $"{total / build.Elapsed.TotalSeconds:F0}");
            table.AddRow("generate + build", $"{(generate.Elapsed + build.Elapsed).TotalSeconds:F2}", $"{total / (generate.Elapsed + build.Elapsed).TotalSeconds:F0}");
            console.Write(table);
            console.MarkupLine($"kept {result.Records.Count:N0} images, {result.Stats.Manifests["b"].Examples:N0} scheme-b examples (leakage-free: {result.Stats.Manifests["b"].Leakage.IsLeakageFree}).");
            return ExitCodes.Ok;
        }
        finally
        {
            if (settings.Keep is null && Directory.Exists(dir)) Directory.Delete(dir, recursive: true);
        }
    }
}
