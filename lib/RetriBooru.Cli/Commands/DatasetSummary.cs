using RetriBooru.Data;
using RetriBooru.Data.Ingest;
using Spectre.Console;

namespace RetriBooru.Cli.Commands;

/// <summary>The tables `dataset build`, `synth` and `stats` print.</summary>
internal static class DatasetSummary
{
    public static void Write(IAnsiConsole console, DatasetStats stats)
    {
        var overview = new Table().Title("dataset").AddColumn("quantity").AddColumn(new TableColumn("value").RightAligned());
        overview.AddRow("images found", stats.ImagesFound.ToString("N0"));
        overview.AddRow("images kept", stats.Images.ToString("N0"));
        overview.AddRow("characters", stats.Characters.ToString("N0"));
        overview.AddRow("clothing identities", stats.ClothingIdentities.ToString("N0"));
        overview.AddRow("with mask", stats.WithMask.ToString("N0"));
        overview.AddRow("with face box", stats.WithFaceBox.ToString("N0"));
        foreach (var (name, split) in stats.Splits) overview.AddRow($"split {Markup.Escape(name)}", $"{split.Images:N0} images, {split.Characters:N0} characters");
        console.Write(overview);

        var problems = new Table().Title("rejected, warnings, ignored").AddColumn("kind").AddColumn("reason").AddColumn(new TableColumn("files").RightAligned());
        foreach (var (code, count) in stats.Rejected) problems.AddRow("[red]rejected[/]", Markup.Escape(code), count.ToString("N0"));
        foreach (var (code, count) in stats.Warnings) problems.AddRow("[yellow]warning[/]", Markup.Escape(code), count.ToString("N0"));
        foreach (var (code, count) in stats.IgnoredFiles) problems.AddRow("ignored", Markup.Escape(code), count.ToString("N0"));
        if (problems.Rows.Count == 0) problems.AddRow("-", "none", "0");
        console.Write(problems);

        var histogram = new Table().Title("images by number of similar images").AddColumn("similar").AddColumn(new TableColumn("images").RightAligned());
        foreach (var (bin, count) in stats.SimilarHistogram) histogram.AddRow(bin.TrimStart('0'), count.ToString("N0"));
        console.Write(histogram);

        var manifests = new Table().Title("manifests").AddColumn("scheme").AddColumn("file").AddColumn(new TableColumn("examples").RightAligned())
            .AddColumn("by split").AddColumn("skipped").AddColumn("leakage check");
        foreach (var (scheme, m) in stats.Manifests)
        {
            string leakage = m.Leakage.IsLeakageFree
                ? "[green]leakage-free[/]"
                : $"[yellow]{m.Leakage.SelfReferences:N0} self, {m.Leakage.NearDuplicateReferences:N0} near-duplicate references{(scheme == "a" ? " (by design)" : "")}[/]";
            manifests.AddRow(scheme, Markup.Escape(m.File), m.Examples.ToString("N0"),
                Markup.Escape(string.Join(", ", m.ExamplesBySplit.Select(kv => $"{kv.Key} {kv.Value}"))),
                Markup.Escape(m.Skipped.Count == 0 ? "0" : string.Join(", ", m.Skipped.Select(kv => $"{kv.Key} {kv.Value}"))), leakage);
        }
        console.Write(manifests);
    }

    public static void WriteReportHint(IAnsiConsole console, string datasetDir, BuildResult result)
    {
        int rejected = result.Problems.Count(p => p.Severity == ProblemSeverity.Rejected);
        int warnings = result.Problems.Count(p => p.Severity == ProblemSeverity.Warning);
        console.MarkupLine($"Per-file reasons ({rejected:N0} rejected, {warnings:N0} warnings): [blue]{Markup.Escape(Path.Combine(datasetDir, BuildReport.FileName))}[/]");
        // What happened to the folder: created, or an earlier dataset replaced whole; leftovers of an interrupted build cleaned up.
        foreach (var note in result.Notes) console.MarkupLine($"[grey]{Markup.Escape(note)}[/]");
    }
}
