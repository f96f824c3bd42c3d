using System.ComponentModel;
using RetriBooru.Metrics;
using Spectre.Console;
using Spectre.Console.Cli;

namespace RetriBooru.Cli.Commands;

/// <summary>`retribooru metrics bench`: images (or texts) per second for each embedder, the VQA probe and SWD.</summary>
public sealed class MetricsBenchCommand(IAnsiConsole console) : Command<MetricsBenchCommand.Settings>
{
    public sealed class Settings : CommandSettings
    {
        [CommandOption("--images <N>")]
        [Description("Number of drawn 256x256 test images.")]
        [DefaultValue(32)]
        public int Images { get; init; } = 32;

        [CommandOption("--clip <SIZE>")]
        [Description("CLIP tower size to time: none, tiny, b32 (default), b16, l14 (random weights).")]
        [DefaultValue("b32")]
        public string Clip { get; init; } = "b32";

        [CommandOption("--seed <SEED>")]
        [DefaultValue(0L)]
        public long Seed { get; init; }

        public override ValidationResult Validate() =>
            Images < 2 ? ValidationResult.Error("--images must be at least 2")
            : Clip is not ("none" or "tiny" or "b32" or "b16" or "l14") ? ValidationResult.Error($"--clip must be none, tiny, b32, b16 or l14, not '{Clip}'")
            : ValidationResult.Success();
    }

    public override int Execute(CommandContext context, Settings settings, CancellationToken cancellationToken)
    {
        var progress = new Progress<string>(step => console.MarkupLine($"[grey]timing {Markup.Escape(step)}...[/]"));
        var figures = MetricsBenchmark.Run(new MetricsBenchmarkOptions { Images = settings.Images, Clip = settings.Clip, Seed = settings.Seed }, progress);
        var table = new Table().AddColumn("component").AddColumn(new TableColumn("items").RightAligned()).AddColumn(new TableColumn("seconds").RightAligned())
            .AddColumn(new TableColumn("rate").RightAligned()).AddColumn("note");
        foreach (var f in figures)
            table.AddRow(Markup.Escape(f.Component), f.Items.ToString(), f.Seconds.ToString("F2"), Markup.Escape($"{f.PerSecond:F1} {f.Unit}/s"), Markup.Escape(f.Note));
        console.Write(table);
        console.MarkupLine($"[grey]{Environment.ProcessorCount} logical cores; CPU.[/]");
        return ExitCodes.Ok;
    }
}
