using System.ComponentModel;
using RetriBooru.Experiments;
using RetriBooru.Metrics;
using RetriBooru.Runtime;
using Spectre.Console;
using Spectre.Console.Cli;

namespace RetriBooru.Cli.Commands;

/// <summary>Attribute agreement per attribute (which parts of the references a model copies), re-read from a run's samples.</summary>
public sealed class RunsAttributesCommand(IAnsiConsole console) : Command<RunsAttributesCommand.Settings>
{
    public sealed class Settings : CommandSettings
    {
        [CommandArgument(0, "<RUN>")]
        [Description("A finished run folder (printed by quickstart / run).")]
        public string Run { get; init; } = "";

        [CommandOption("--split <SPLIT>")]
        [Description("Only this split (seen, unseen, composition); default every split.")]
        public string? Split { get; init; }
    }

    public override int Execute(CommandContext context, Settings settings, CancellationToken cancellationToken)
    {
        var results = RunResults.Load(settings.Run);
        var skipped = new List<string>();
        var rates = AttributeBreakdown.Read(results, settings.Split, cancellationToken, realPictures: true, skipped);
        if (rates.Count == 0) throw new InvalidDataException($"{settings.Run}: no evaluation{(settings.Split is null ? "" : $" of split '{settings.Split}'")} has samples with attribute ground truth");
        bool points = rates.Where(r => r.Model != AttributeBreakdown.RealPicturesModel).Select(r => r.Point).Distinct().Count() > 1;
        var table = new Table().Title("share of samples showing each attribute of their references").AddColumn("model").AddColumn("split").AddColumn(new TableColumn("n").RightAligned());
        foreach (var attribute in AttributeAgreement.IdentityAttributes) table.AddColumn(new TableColumn(attribute).RightAligned());
        table.AddColumn(new TableColumn("mean (run)").RightAligned());
        foreach (var r in rates)
        {
            var model = r.Model == AttributeBreakdown.RealPicturesModel ? r.Model : $"{r.Model}{(r.Scheme == "b" ? "" : "-" + r.Scheme)}{(points ? $" [{r.PointLabel}]" : "")}";
            var cells = new List<string> { Markup.Escape(model), r.Split, r.Samples.ToString() };
            cells.AddRange(AttributeAgreement.IdentityAttributes.Select(a => r.Rates.TryGetValue(a, out var v) ? v.ToString("F2") : "-"));
            cells.Add($"{r.Agreement:F3} ({(r.RecordedAgreement is double run ? run.ToString("F3") : "-")})");
            table.AddRow(cells.ToArray());
        }
        console.Write(table);
        if (skipped.Count > 0)
            console.MarkupLine($"[yellow]warning:[/] {skipped.Count} real picture(s) unreadable, left out of the real-pictures rows (first: {Markup.Escape(skipped[0])})");
        if (rates.Any(r => r.Model == AttributeBreakdown.RealPicturesModel))
            console.MarkupLine("[grey]real pictures: the dataset's pictures of each set's character in its outfit (references' sources left out), read by the same probe against the same references: what a perfect copy would score[/]");
        var mismatched = rates.Where(r => r.RecordedAgreement is not null && !r.MatchesRun).ToList();
        if (mismatched.Count > 0)
            console.MarkupLine($"[yellow]warning:[/] {mismatched.Count} evaluation(s) re-read to another mean than the run recorded: the dataset's probe is not the one that scored them (another evaluation protocol since?)");
        var path = Path.Combine(results.Run.Path, AttributeBreakdown.CsvFile);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        AtomicFile.WriteAllText(path, AttributeBreakdown.ToCsv(rates));
        console.MarkupLine($"per-attribute agreement -> [bold]{Markup.Escape(Path.GetFullPath(path))}[/]");
        return ExitCodes.Ok;
    }
}
