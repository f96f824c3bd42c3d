using System.Globalization;
using System.Text;
using RetriBooru.Runtime;
using RetriBooru.Settings;

namespace RetriBooru.Experiments;

/// <summary>What a results page shows besides the tables: which split's samples, how many reference sets, how large.</summary>
public sealed record ResultsPageOptions
{
    public string GridSplit { get; init; } = "seen";
    public int GridSets { get; init; } = 3;
    public int GridCell { get; init; } = 48;
    /// <summary>The committed grid must stay small: the cell shrinks until the PNG fits (docs/results pages: 300 KB).</summary>
    public int MaxGridBytes { get; init; } = 300 * 1024;
}

/// <summary>
/// A study's results page (docs/results/&lt;study&gt;.md): spec, the command that reruns it, per run its id, seeds, git
/// commit and wall time, one table per split with every metric as mean [95% CI] (runs of several seeds side by side),
/// and a sample grid PNG beside the page. The page's "## Reading" section is written by a person and kept when the page
/// is regenerated.
/// </summary>
public static class ResultsPage
{
    public const string ReadingHeading = "## Reading";
    static readonly string TextOnly = ModelKind.TextOnly.Name();

    /// <summary>Metric columns, in this order, when any evaluation has them.</summary>
    public static readonly (string Metric, string Title)[] Columns =
    [
        ("attribute_agreement", "attribute agreement"), ("prompt_consistency", "prompt consistency"), ("leakage", "leakage"),
        ("swd", "SWD"), ("kid", "KID"), ("kid_position", "KID position"), ("readability", "readability"),
    ];

    /// <summary>Writes the page and its grid; returns the grid's path. Runs must be finished runs of one spec.</summary>
    public static string Write(IReadOnlyList<RunResults> runs, string pagePath, ResultsPageOptions options)
    {
        if (runs.Count == 0) throw new ArgumentException("a results page needs at least one run", nameof(runs));
        if (options.GridSets < 1) throw new ArgumentOutOfRangeException(nameof(options), options.GridSets, "the grid shows at least one reference set");
        if (options.GridCell < 16) throw new ArgumentOutOfRangeException(nameof(options), options.GridCell, "grid cells are at least 16 px");
        foreach (var r in runs)
            if (r.Run.Info.Status != "finished")
                throw new InvalidDataException($"{r.Run.Path}: run status is '{r.Run.Info.Status}'; a results page is made from finished runs");
        var names = runs.Select(r => r.Spec.Name).Distinct().ToList();
        if (names.Count > 1) throw new InvalidDataException($"the runs are of different studies ({string.Join(", ", names)}); one page per study");

        var folder = Path.GetDirectoryName(Path.GetFullPath(pagePath))!;
        Directory.CreateDirectory(folder);
        var gridName = $"{Path.GetFileNameWithoutExtension(pagePath)}-{options.GridSplit}.png";
        var gridPath = Path.Combine(folder, gridName);
        var gridCaption = WriteGrid(runs[0], gridPath, options);

        var reading = File.Exists(pagePath) ? ExistingReading(File.ReadAllText(pagePath)) : null;
        AtomicFile.WriteAllText(pagePath, Render(runs, folder, gridName, gridCaption, reading));
        return gridPath;
    }

    /// <summary>The page's markdown (separate from <see cref="Write"/> so tests can read it without files).</summary>
    public static string Render(IReadOnlyList<RunResults> runs, string pageFolder, string gridName, string gridCaption, string? reading)
    {
        var first = runs[0];
        var md = new StringBuilder();
        md.Append($"# {first.Spec.Name}: results\n\n{first.Spec.Description}\n\n");
        var specFile = first.Run.Info.SpecFile;
        if (specFile is not null)
        {
            var link = File.Exists(specFile) ? Path.GetRelativePath(pageFolder, Path.GetFullPath(specFile)).Replace('\\', '/') : null;
            md.Append(link is null ? $"Spec: `{specFile}`.\n\n" : $"Spec: [`{specFile}`]({link}).\n\n");
        }
        md.Append("| run | command | seed (training / dataset) | git commit | wall time | stages | machine |\n|---|---|---|---|---|---|---|\n");
        foreach (var r in runs) md.Append(RunRow(r)).Append('\n');
        md.Append("\nWall time is the run's own, start to finish; a stage reused from the cache took only the time to find it, so a run\n")
          .Append("that reused stages cost less than a fresh one (the stages column counts them).\n");

        bool severalRuns = runs.Count > 1;
        // A scheme column when the study trains with more than one (the leakage study); text-only uses no references.
        bool severalSchemes = runs.SelectMany(r => r.Evaluations).Where(e => e.Model != TextOnly).Select(e => e.Scheme).Distinct().Count() > 1;
        var evaluations = runs.SelectMany(r => r.Evaluations.Select(e => (Run: r, Evaluation: e))).ToList();
        var columns = Columns.Where(c => evaluations.Any(x => x.Evaluation.Summary.ContainsKey(c.Metric))).ToList();
        foreach (var split in evaluations.Select(x => x.Evaluation.Split).Distinct())
        {
            md.Append($"\n## {char.ToUpperInvariant(split[0])}{split[1..]} split\n\n");
            md.Append("| model |").Append(severalSchemes ? " scheme |" : "").Append(severalRuns ? (runs.Any(r => OtherOverrides(r).Any()) ? " run |" : " seed |") : "").Append(string.Concat(columns.Select(c => $" {c.Title} |"))).Append('\n');
            md.Append("|---|").Append(severalSchemes ? "---|" : "").Append(severalRuns ? "---|" : "").Append(string.Concat(columns.Select(_ => "---|"))).Append('\n');
            // Rows of one model together (its seeds side by side), models in the order the runs evaluated them.
            var rows = evaluations.Where(x => x.Evaluation.Split == split)
                .GroupBy(x => x.Evaluation.Label).SelectMany(g => g);
            foreach (var (run, e) in rows)
            {
                md.Append($"| {e.Model}{(e.PointLabel is "" or "default" ? "" : $" [{e.PointLabel}]")} |");
                if (severalSchemes) md.Append(e.Model == TextOnly ? " - |" : $" {e.Scheme} |");
                if (severalRuns) md.Append($" {string.Join(", ", OtherOverrides(run).Prepend(SeedLabel(run)))} |");
                foreach (var (metric, _) in columns)
                    md.Append(e.Summary.TryGetValue(metric, out var s) ? F($" {s.Mean:F3} [{s.Lower:F3}, {s.Upper:F3}] |") : " - |");
                md.Append('\n');
            }
        }
        md.Append("\nEach cell: mean [95% bootstrap interval]; the interval resamples the split's reference sets, each with all its\n")
          .Append("samples (KID's interval resamples single samples). Attribute agreement: how\n")
          .Append("often the attribute probe reads the reference character's hair and outfit in a sample (real pictures: about 0.93 if the probe trained on them,\n")
          .Append("about 0.68 if not);\n")
          .Append("prompt consistency: the prompted scene tags; leakage: how much more a sample shares its references' background,\n")
          .Append("pose and layout than unrelated pictures of the character do (0 = no more; copying is positive); SWD: how varied a\n")
          .Append("reference set's samples are while keeping the identity (higher is better); KID: image quality against the\n")
          .Append("split's real pictures (lower is better), and its position between real-vs-real (0) and noise-vs-real (1);\n")
          .Append("readability: the probe's agreement with the prompt on samples over the same on real pictures (1 = as readable).\n")
          .Append("Formulas: [metrics](../metrics.md#formulas).\n");
        md.Append($"\n## Samples\n\n![{gridCaption}]({gridName})\n\n{gridCaption}.\n");
        if (reading is not null) md.Append('\n').Append(reading.TrimEnd()).Append('\n');
        return md.ToString();
    }

    static string RunRow(RunResults r)
    {
        var info = r.Run.Info;
        var p = info.Provenance;
        var command = "retribooru run " + (info.SpecFile ?? r.Spec.Name) + (info.Quick ? " --quick" : "")
            + string.Concat(info.Overrides.Select(o => $" --set {o}"))
            // The default thread count is the machine's cores; another count rounds differently, so the command carries it.
            + (p is not null && p.Threads > 0 && p.Threads != p.Cores ? $" --threads {p.Threads}" : "");
        var commit = p?.GitCommit is string c ? c[..Math.Min(10, c.Length)] + (p.GitDirty == true ? " (uncommitted changes)" : "") : "unknown";
        var wall = info.FinishedUtc is DateTime end ? Duration(end - info.CreatedUtc) : "unknown";
        int reused = r.Timings.Count(t => t.Reused), computed = r.Timings.Count - reused;
        var machine = p is null ? "unknown" : F($"{p.Cores} cores, {p.Threads} thread{(p.Threads == 1 ? "" : "s")}{(p.LoadAverage is double load ? $", load {load:F1} at start" : "")}");
        return $"| {info.Id} | `{command}` | {SeedLabel(r)} | {commit} | {wall} | {computed} computed, {reused} reused | {machine} |";
    }

    static string SeedLabel(RunResults r) => F($"{r.Spec.Seed} / {r.Spec.Dataset.Seed}");

    /// <summary>A run's overrides other than the seeds (shown beside the seeds, so runs of one study in another setting stay apart).</summary>
    static IEnumerable<string> OtherOverrides(RunResults r) =>
        r.Run.Info.Overrides.Where(o => !o.StartsWith("seed=", StringComparison.Ordinal) && !o.StartsWith("dataset.seed=", StringComparison.Ordinal));

    static string Duration(TimeSpan t) => t.TotalMinutes >= 1 ? F($"{(int)t.TotalMinutes} min {t.Seconds} s") : F($"{t.TotalSeconds:F0} s");

    static string F(FormattableString s) => s.ToString(CultureInfo.InvariantCulture);

    /// <summary>Draws the first run's comparison grid, shrinking cells until the PNG fits the size limit; returns its caption.</summary>
    static string WriteGrid(RunResults run, string gridPath, ResultsPageOptions options)
    {
        for (int cell = options.GridCell; cell >= 16; cell = cell * 4 / 5)
        {
            using var grid = ReportBuilder.ComparisonGrid(run.Evaluations, options.GridSplit, options.GridSets, cell)
                ?? throw new InvalidDataException($"{run.Run.Path}: the '{options.GridSplit}' evaluations saved no sample images");
            var png = grid.ToPng(labels: true);
            if (png.Length > options.MaxGridBytes) continue;
            AtomicFile.WriteAllBytes(gridPath, png);
            return F($"{options.GridSplit} split of run {run.Run.Info.Id}, {Math.Min(options.GridSets, run.Evaluations.First(e => e.Split == options.GridSplit).Sets.Count)} reference sets: per set the references, then each model's samples for the same references and seeds");
        }
        throw new InvalidDataException($"{run.Run.Path}: the '{options.GridSplit}' grid does not fit {options.MaxGridBytes / 1024} KB even at 16 px cells; show fewer sets");
    }

    /// <summary>The "## Reading" section of an existing page (to the next level-2 heading), or null.</summary>
    public static string? ExistingReading(string page)
    {
        var text = page.Replace("\r\n", "\n");
        int start;
        if (text.StartsWith(ReadingHeading + "\n", StringComparison.Ordinal)) start = 0;
        else
        {
            int at = text.IndexOf("\n" + ReadingHeading + "\n", StringComparison.Ordinal);
            if (at < 0) return null;
            start = at + 1;
        }
        int next = text.IndexOf("\n## ", start + ReadingHeading.Length, StringComparison.Ordinal);
        return next < 0 ? text[start..] : text[start..(next + 1)];
    }
}
