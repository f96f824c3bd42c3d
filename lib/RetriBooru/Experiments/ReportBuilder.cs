using System.Globalization;
using System.Text.Json;
using RetriBooru.Imaging;
using SkiaSharp;

namespace RetriBooru.Experiments;

/// <summary>
/// Assembles a run's HTML report: run facts, stage timings, loss curves, results table, image quality (KID beside its
/// floor and ceiling, readability), metric bars with 95% confidence intervals per split, the identity vs prompt-consistency trade-off, SWD vs identity per
/// reference set, and sample grids (references | generations of each model).
/// </summary>
public static class ReportBuilder
{
    public static readonly string[] HeadlineMetrics = ["attribute_agreement", "attribute_agreement_face", "attribute_agreement_clothes", "identity", "identity_face", "identity_clothes", "prompt_consistency", "swd", "leakage"];

    /// <summary>
    /// The identity score charts use: attribute agreement when the evaluations have it (synthetic data: it separates
    /// identities), else the embedding identity similarity.
    /// </summary>
    public static string IdentityMetric(IReadOnlyList<ModelEvaluation> evaluations) =>
        evaluations.Any(e => e.Summary.ContainsKey("attribute_agreement")) ? "attribute_agreement" : "identity";

    static string AxisTitle(string metric) => metric == "attribute_agreement" ? "identity (attribute agreement)" : "identity similarity";
    public static readonly string[] SectionIds = ["run", "timings", "loss", "results", "quality", "metrics", "tradeoff", "swd-identity", "samples"];

    public static HtmlReport Build(ExperimentSpec spec, RunFolder run, IReadOnlyList<ModelEvaluation> evaluations, IReadOnlyList<StageTiming> timings)
    {
        var report = new HtmlReport(spec.Report.Title ?? $"RetriBooru Workbench — {spec.Name}");
        var p = run.Info.Provenance;
        report.KeyValues("run", "Run", [
            ("experiment", spec.Name), ("description", spec.Description), ("run", run.Info.Id), ("seed", spec.Seed.ToString(CultureInfo.InvariantCulture)),
            ("quick", run.Info.Quick ? "yes" : "no"), ("points", run.Info.Points is null ? "all" : string.Join(", ", run.Info.Points)),
            ("git commit", p?.GitCommit ?? "unknown"), ("uncommitted changes", p?.GitDirty is bool d ? (d ? "yes" : "no") : "unknown"),
            ("machine", p is null ? "" : $"{p.Os}, {p.Cores} cores, {p.MemoryGiB} GiB, {p.Device}, {p.Threads} libtorch threads"),
            ("software", p is null ? "" : $"{p.DotNet}, TorchSharp {p.TorchSharp}, libtorch {p.LibTorch}"),
            ("created (UTC)", run.Info.CreatedUtc.ToString("u", CultureInfo.InvariantCulture)),
        ]);
        report.Table("timings", "Stages", [["stage", "seconds", "reused"],
            .. timings.Select(t => (IReadOnlyList<string>)[t.Stage, t.Seconds.ToString("F1", CultureInfo.InvariantCulture), t.Reused ? "yes" : "no"])],
            $"total {timings.Sum(t => t.Seconds):F1} s; reused stages come from the content-addressed cache");

        var losses = evaluations.GroupBy(e => e.LossLog).Select(g => (Label: g.First().Label, Path: g.Key))
            .Where(x => File.Exists(x.Path)).Select(x => ReadLoss(x.Label, x.Path)).Where(s => s.Steps.Count > 0).ToList();
        if (losses.Count > 0) report.Chart("loss", "Training loss", Charts.LossCurves(losses, smoothing: 0.9), "exponential moving average (0.9) of the per-step loss");
        else report.Paragraph("loss", "Training loss", "No training logs: every model came from an existing checkpoint.");

        var metrics = HeadlineMetrics.Where(m => evaluations.Any(e => e.Summary.ContainsKey(m))).ToList();
        report.Table("results", "Results (mean [95% bootstrap CI])",
            [["model", "split", .. metrics], .. evaluations.Select(e => (IReadOnlyList<string>)[e.Label, e.Split,
                .. metrics.Select(m => e.Summary.TryGetValue(m, out var s) ? $"{s.Mean:F3} [{s.Lower:F3}, {s.Upper:F3}]" : "-")])]);

        AddImageQuality(report, evaluations);

        var bars = evaluations.Select(e => e.Split).Distinct()
            .Select(split => (Split: split, Chart: MetricBarsChart(evaluations, split))).Where(b => b.Chart is not null).ToList();
        if (bars.Count > 0)
        {
            report.Chart("metrics", $"Metrics: {bars[0].Split} split", bars[0].Chart!);
            foreach (var (split, chart) in bars.Skip(1)) report.Chart($"metrics-{split}", $"Metrics: {split} split", chart!);
        }
        else report.Paragraph("metrics", "Metrics", "No evaluation results.");

        var tradeoff = TradeOffChart(spec, evaluations);
        if (tradeoff is not null)
            report.Chart("tradeoff", "Identity vs prompt consistency", tradeoff, "each point: mean with 95% CI on both axes (seen split)");
        else report.Paragraph("tradeoff", "Identity vs prompt consistency", "Needs identity and prompt-consistency scores (the attribute probe needs a synthetic dataset).");

        var scatter = SwdIdentityChart(evaluations);
        if (scatter is not null) report.Chart("swd-identity", "SWD vs identity (per reference set)", scatter);
        else report.Paragraph("swd-identity", "SWD vs identity", "No per-set SWD and identity scores.");

        AddSampleGrids(report, spec, evaluations);
        return report;
    }

    /// <summary>One line of a results table, each metric as "mean [low, high]" (95% bootstrap CI).</summary>
    public sealed record ResultLine(string Model, string Split, string AttributeAgreement, string Identity, string PromptConsistency, string Swd, string Leakage,
        string Kid, string Readability);

    public static IReadOnlyList<ResultLine> ResultLines(IReadOnlyList<ModelEvaluation> evaluations, string? split = null) =>
        evaluations.Where(e => split is null || e.Split == split).Select(e => new ResultLine(e.Label, e.Split, Format(e, "attribute_agreement"),
            Format(e, "identity"), Format(e, "prompt_consistency"), Format(e, "swd"), Format(e, "leakage"), Format(e, "kid"), Format(e, "readability"))).ToList();

    /// <summary>
    /// KID per model and split beside its two reference points (real vs real, noise vs real: a KID means little without
    /// them), where it sits between them, and readability.
    /// </summary>
    static void AddImageQuality(HtmlReport report, IReadOnlyList<ModelEvaluation> evaluations)
    {
        var scored = evaluations.Where(e => e.Summary.ContainsKey("kid") || e.Summary.ContainsKey("readability")).ToList();
        if (scored.Count == 0)
        {
            report.Paragraph("quality", "Image quality", "No KID or readability scores (evaluations from before they were measured, or too few real images in the split).");
            return;
        }
        string Value(ModelEvaluation e, string metric) => e.Summary.TryGetValue(metric, out var s) ? s.Mean.ToString("F3", CultureInfo.InvariantCulture) : "-";
        report.Table("quality", "Image quality",
            [["model", "split", "KID [95% CI]", "floor: real vs real", "ceiling: noise vs real", "position (0 floor, 1 ceiling)", "readability [95% CI]"],
             .. scored.Select(e => (IReadOnlyList<string>)[e.Label, e.Split, Format(e, "kid"), Value(e, "kid_floor"), Value(e, "kid_ceiling"),
                 Format(e, "kid_position"), Format(e, "readability")])],
            "KID: unbiased MMD² between ResNet18 pool features of the samples and of the split's real images (lower is better). " +
            "The floor is KID between two halves of the real images, the ceiling KID of per-pixel noise against them. " +
            "Readability: the probe's agreement with the prompt on samples divided by the same on the real images (1 = as readable as real pictures).");
    }

    static string Format(ModelEvaluation e, string metric) =>
        e.Summary.TryGetValue(metric, out var s) ? $"{s.Mean:F3} [{s.Lower:F3}, {s.Upper:F3}]" : "-";

    /// <summary>Bars of every headline metric with 95% CIs, one colour per model, for one split; null without scores.</summary>
    public static Plotly.NET.GenericChart? MetricBarsChart(IReadOnlyList<ModelEvaluation> evaluations, string split)
    {
        var points = evaluations.Where(e => e.Split == split)
            .SelectMany(e => HeadlineMetrics.Where(e.Summary.ContainsKey).Select(m => new MetricPoint(e.Label, m, e.Summary[m].Mean, e.Summary[m].Lower, e.Summary[m].Upper))).ToList();
        return points.Count == 0 ? null : Charts.MetricBars(points, $"{split} split (mean, 95% CI)");
    }

    /// <summary>Identity vs prompt consistency (seen split), one labelled point per model and sweep point; null without scores.</summary>
    public static Plotly.NET.GenericChart? TradeOffChart(ExperimentSpec spec, IReadOnlyList<ModelEvaluation> evaluations)
    {
        var split = evaluations.Any(x => x.Split == "seen") ? "seen" : evaluations.FirstOrDefault()?.Split;
        var identity = IdentityMetric(evaluations);
        var points = evaluations.Where(e => e.Split == split && e.Summary.ContainsKey(identity) && e.Summary.ContainsKey("prompt_consistency"))
            .Select(e => new TradeOffPoint(spec.Sweep.Count > 0 ? $"{e.Model} {e.PointLabel}" : e.Label,
                e.Summary[identity].Mean, e.Summary[identity].Lower, e.Summary[identity].Upper,
                e.Summary["prompt_consistency"].Mean, e.Summary["prompt_consistency"].Lower, e.Summary["prompt_consistency"].Upper)).ToList();
        return points.Count == 0 ? null : Charts.TradeOff(points, AxisTitle(identity), "prompt consistency",
            spec.Sweep.Count > 0 ? $"across {string.Join(", ", spec.Sweep.Keys)}" : "per model");
    }

    /// <summary>Per reference set: SWD against identity, one colour per model (seen split); null without scores.</summary>
    public static Plotly.NET.GenericChart? SwdIdentityChart(IReadOnlyList<ModelEvaluation> evaluations)
    {
        var identity = IdentityMetric(evaluations);
        var points = evaluations.Where(e => e.Split == "seen" || evaluations.All(x => x.Split != "seen"))
            .SelectMany(e => e.PerSet.Select((s, i) => (e, s, i)))
            .Where(x => x.s.ContainsKey(identity) && x.s.ContainsKey("swd"))
            .Select(x => (x.e.Label, x.s[identity], x.s["swd"], x.i < x.e.Sets.Count ? x.e.Sets[x.i].Id : $"set {x.i}")).ToList();
        return points.Count == 0 ? null : Charts.GroupedScatter(points, AxisTitle(identity), "SWD", "SWD vs identity");
    }

    /// <summary>References and every model's samples for one reference set of one split, as an image grid (null if nothing was saved).</summary>
    public static ImageGrid? SampleGrid(IReadOnlyList<ModelEvaluation> evaluations, string split, string setId, int cellSize = 64)
    {
        var ofSplit = evaluations.Where(e => e.Split == split).ToList();
        var first = ofSplit.SelectMany(e => e.Sets).FirstOrDefault(s => s.Id == setId);
        if (first is null) return null;
        var grid = new ImageGrid(cellSize, padding: 3);
        AddRow(grid, "references", first.References);
        foreach (var e in ofSplit)
            if (e.Sets.FirstOrDefault(s => s.Id == setId) is { } same) AddRow(grid, e.Label, same.Samples);
        if (grid.RowCount >= 2) return grid;
        grid.Dispose();
        return null;
    }

    /// <summary>
    /// Several reference sets of one split in one grid: for each set a row of references, then one row per model with
    /// its samples for those references and seeds (so colours can be compared down a column). Null when nothing was saved.
    /// </summary>
    public static ImageGrid? ComparisonGrid(IReadOnlyList<ModelEvaluation> evaluations, string split, int maxSets, int cellSize = 64)
    {
        if (maxSets < 1) throw new ArgumentOutOfRangeException(nameof(maxSets), maxSets, "show at least one reference set");
        var ofSplit = evaluations.Where(e => e.Split == split).ToList();
        if (ofSplit.Count == 0)
            throw new ArgumentException($"no evaluation of split '{split}' in this run (it has: {string.Join(", ", evaluations.Select(e => e.Split).Distinct())})");
        var grid = new ImageGrid(cellSize, padding: 3);
        foreach (var set in ofSplit[0].Sets.Take(maxSets))
        {
            AddRow(grid, $"{set.Id} refs", set.References);
            foreach (var e in ofSplit)
                if (e.Sets.FirstOrDefault(s => s.Id == set.Id) is { } same) AddRow(grid, e.Label, same.Samples);
        }
        if (grid.RowCount > 0) return grid;
        grid.Dispose();
        return null;
    }

    static void AddSampleGrids(HtmlReport report, ExperimentSpec spec, IReadOnlyList<ModelEvaluation> evaluations)
    {
        var splits = evaluations.Select(e => e.Split).Distinct().ToList();
        int added = 0;
        foreach (var split in splits)
        {
            var ofSplit = evaluations.Where(e => e.Split == split && e.Sets.Count > 0).ToList();
            if (ofSplit.Count == 0) continue;
            foreach (var set in ofSplit[0].Sets.Take(Math.Max(1, spec.Report.SampleGrids)))
            {
                using var grid = SampleGrid(evaluations, split, set.Id);
                if (grid is null) continue;
                report.Grid(added == 0 ? "samples" : $"samples-{added}", $"Samples: {split} split, reference set {set.Id}", grid,
                    "first row: the references; then each model's generations for the same references and seeds");
                added++;
            }
        }
        if (added == 0) report.Paragraph("samples", "Samples", "No sample images were saved.");
    }

    static void AddRow(ImageGrid grid, string label, IReadOnlyList<string> paths)
    {
        var bitmaps = new List<SKBitmap>();
        try
        {
            foreach (var path in paths.Where(File.Exists)) bitmaps.Add(ImageTensor.LoadBitmap(path));
            if (bitmaps.Count > 0) grid.AddRow(label, bitmaps);
        }
        finally
        {
            foreach (var b in bitmaps) b.Dispose();
        }
    }

    public static LossSeries ReadLoss(string label, string path)
    {
        var steps = new List<int>();
        var losses = new List<double>();
        foreach (var line in File.ReadLines(path))
        {
            if (string.IsNullOrWhiteSpace(line)) continue;
            using var doc = JsonDocument.Parse(line);
            steps.Add(doc.RootElement.GetProperty("step").GetInt32());
            losses.Add(doc.RootElement.GetProperty("loss").GetDouble());
        }
        return new LossSeries(label, steps, losses);
    }
}
