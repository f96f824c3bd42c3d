using RetriBooru.Settings;
using RetriBooru.Data;
using RetriBooru.Data.Retrieval;
using RetriBooru.Data.Ingest;
using RetriBooru.Diffusion;
using RetriBooru.Imaging;
using RetriBooru.Interactive;
using SkiaSharp;
using Xunit;

namespace RetriBooru.Tests;

public class InteractiveViewTests
{
    /// <summary>A two-image dataset folder written by hand: images, one mask, crops.</summary>
    static (string Dir, ImageRecord Record, TrainingExample Example) SmallFolder(TempDir tmp)
    {
        foreach (var folder in new[] { "images", "masks", "crops" }) Directory.CreateDirectory(tmp.File(folder));
        void Png(string path, SKColor color)
        {
            using var bitmap = new SKBitmap(16, 16);
            bitmap.Erase(color);
            File.WriteAllBytes(tmp.File(path), ImageTensor.EncodePng(bitmap));
        }
        Png("images/a.png", SKColors.SkyBlue);
        Png("masks/a.png", SKColors.White);
        Png("crops/b_face.png", SKColors.Peru);
        var record = new ImageRecord
        {
            Id = "a", Image = "images/a.png", Mask = "masks/a.png", Character = "alice", FaceBox = [0.25f, 0.25f, 0.5f, 0.5f],
            Clothes = ["red_skirt"], ClothingId = "c1", Similar = ["b", "c", "d"], Prompts = "1girl, alice, red_skirt", Split = "train",
        };
        var example = new TrainingExample
        {
            Target = "a", Image = "images/a.png", Mask = "masks/a.png", Prompt = "1girl, red_skirt", Split = "train", Scheme = "b",
            Character = "alice", ClothingId = "c1",
            References = [new ReferenceImage { Id = "b_face", Image = "crops/b_face.png", Concept = Concept.Face, SourceId = "b" },
                          new ReferenceImage { Id = "c_clothes", Image = "crops/c_clothes.png", Concept = Concept.Clothes, SourceId = "c" }],
        };
        return (tmp.Path, record, example);
    }

    static int Count(string text, string part) => (text.Length - text.Replace(part, "").Length) / part.Length;

    [Fact]
    public void Record_card_shows_image_mask_annotations_and_references()
    {
        using var tmp = new TempDir();
        var (dir, record, example) = SmallFolder(tmp);
        var plain = new RecordCard(dir, record).ToHtml();
        Assert.Equal(2, Count(plain, "data:image/png;base64,"));
        Assert.True(plain.Contains("alice") && plain.Contains("c1: red_skirt") && plain.Contains("3 images") && plain.Contains("face box"), plain);

        var withReferences = RecordCard.For(dir, example, [record]).ToHtml();
        Assert.Equal(3, Count(withReferences, "data:image/png;base64,"));
        Assert.True(withReferences.Contains("face &larr; b") && withReferences.Contains("clothes &larr; c"), withReferences);
        // The missing crop is named, and the rest of the card still renders.
        Assert.True(withReferences.Contains("crops/c_clothes.png: file not found"), withReferences);

        Assert.Throws<KeyNotFoundException>(() => RecordCard.For(dir, example, []));
        Assert.Throws<ArgumentException>(() => new RecordCard(dir, record with { Id = "z" }, example));
        Assert.Equal(2, Count(RecordCard.Gallery([new RecordCard(dir, record), new RecordCard(dir, record)]).Html, "border-radius"));
    }

    [Fact]
    public void Face_box_is_drawn_on_its_outline_only()
    {
        using var bitmap = new SKBitmap(new SKImageInfo(40, 40, SKColorType.Rgba8888, SKAlphaType.Premul));
        bitmap.Erase(SKColors.White);
        using (var canvas = new SKCanvas(bitmap)) RecordCard.DrawBox(canvas, [0.25f, 0.25f, 0.5f, 0.5f], 40, 40);
        Assert.Equal(new SKColor(255, 0, 200), bitmap.GetPixel(10, 20));   // left edge
        Assert.Equal(new SKColor(255, 0, 200), bitmap.GetPixel(20, 30));   // bottom edge
        Assert.Equal(SKColors.White, bitmap.GetPixel(20, 20));            // inside
        Assert.Equal(SKColors.White, bitmap.GetPixel(2, 2));              // outside
    }

    sealed record Row(string Name, double Score, int Count);

    [Fact]
    public void Tables_take_headers_from_properties_or_arguments()
    {
        var fromRecords = HtmlTables.Of([new Row("a<b", 0.123456, 7)]).Html;
        Assert.True(fromRecords.Contains(">Name</th>") && fromRecords.Contains(">Score</th>") && fromRecords.Contains("a&lt;b"), fromRecords);
        Assert.Contains(">0.1235</td>", fromRecords);
        Assert.Contains("text-align:right\">7</td>", fromRecords);

        var fromTuples = HtmlTables.Of([("train", 12), ("unseen", 3)], "split", "examples").Html;
        Assert.True(fromTuples.Contains(">split</th>") && fromTuples.Contains(">unseen</td>") && !fromTuples.Contains("Item1"), fromTuples);
        Assert.Throws<ArgumentException>(() => HtmlTables.Of([("train", 12)], "only one header"));
        Assert.Equal("x, y", HtmlTables.FormatValue(new[] { "x", "y" }));
    }

    [Fact]
    public void Dataset_stats_and_leakage_reports_render_as_tables()
    {
        var clean = new LeakageReport { Scheme = "b", Examples = 10, References = 40, NearDuplicateThreshold = 14 };
        var leaky = clean with { Scheme = "a", SelfReferences = 40, Violations = ["000001: reference 000001_face is cut from the target itself"] };
        var stats = new DatasetStats
        {
            ImagesFound = 12, Images = 10, Characters = 3, ClothingIdentities = 4,
            Splits = new() { ["train"] = new SplitStats(8, 2), ["unseen"] = new SplitStats(2, 1) },
            Rejected = new() { ["singleton_identity"] = 2 }, Warnings = new(), IgnoredFiles = new(),
            SimilarHistogram = new() { ["01"] = 2, ["15+"] = 8 },
            Manifests = new() { ["b"] = new ManifestStats { File = "manifests/scheme_b.jsonl", Examples = 10, ExamplesBySplit = new() { ["train"] = 8 }, Skipped = new(), Leakage = clean } },
            Options = new BuildOptions(),
        };
        var html = HtmlTables.DatasetStatsHtml(stats);
        foreach (var part in new[] { ">images kept</td>", ">unseen</td>", ">15+</td>", ">singleton_identity</td>", "manifests/scheme_b.jsonl", ">yes</td>" })
            Assert.True(html.Contains(part), $"missing {part}");
        Assert.Contains("scheme b: leakage-free", HtmlTables.LeakageHtml(clean));
        var leakyHtml = HtmlTables.LeakageHtml(leaky);
        Assert.True(leakyHtml.Contains("scheme a: LEAKS") && leakyHtml.Contains("cut from the target itself"), leakyHtml);
    }

    [Fact]
    public void Progress_adapters_feed_the_chart_and_the_bar()
    {
        var chart = new LiveLossChart("run", minInterval: TimeSpan.Zero);
        var bar = new NotebookProgress("training");
        var sink = chart.ForTraining(bar);
        sink.Report(new TrainingProgress(0, 4, 0.9, 1e-3, 1, 2));
        sink.Report(new TrainingProgress(1, 4, 0.7, 1e-3, 1, 2));
        Assert.Equal([1, 2], chart.Steps);
        Assert.Equal([0.9, 0.7], chart.Losses);
        Assert.Equal(0.5, bar.LastFraction);
        Assert.StartsWith("step 2/4, loss 0.7000", bar.LastMessage);

        var datasetBar = new NotebookProgress("dataset");
        datasetBar.ForDataset().Report(new DatasetProgress("crops", 3, 12));
        Assert.Equal(0.25, datasetBar.LastFraction);
        datasetBar.ForDataset().Report(new DatasetProgress("scan", 40, 0));
        Assert.Equal((0.0, "scan 40"), (datasetBar.LastFraction, datasetBar.LastMessage));
    }

    [Fact]
    public void Side_by_side_needs_aligned_rows_and_shows_titles()
    {
        Torch.Load();
        using var view = new SideBySide();
        var left = new ImageGrid(8);
        left.AddRow("x", TorchSharp.torch.zeros(2, 3, 8, 8));
        var right = new ImageGrid(8);
        right.AddRow("x", TorchSharp.torch.ones(1, 3, 8, 8));
        view.Add("references", left).Add("model", right);
        var html = view.ToHtml();
        Assert.True(html.Contains(">references</div>") && html.Contains(">model</div>"), html);
        Assert.Equal(2, Count(html, "data:image/png;base64,"));
        var extra = new ImageGrid(8);
        extra.AddRow("x", TorchSharp.torch.zeros(1, 3, 8, 8)).AddRow("y", TorchSharp.torch.zeros(1, 3, 8, 8));
        Assert.Throws<ArgumentException>(() => view.Add("too many rows", extra));
        extra.Dispose();
    }

    [Fact]
    public void Repository_root_is_found_from_a_subfolder_and_names_are_checked()
    {
        Assert.Equal(RepoPaths.Root, NotebookSession.RepositoryRoot(Path.Combine(RepoPaths.Root, "notebooks")));
        Assert.Throws<DirectoryNotFoundException>(() => NotebookSession.RepositoryRoot(Path.GetTempPath()));
        Assert.Throws<ArgumentException>(() => NotebookSession.OutputFolder("a/b"));
    }
}

/// <summary>The comparison view samples every model from the same noise, so identical models give identical pictures.</summary>
public class ReferenceComparisonTests(SmallReferenceWorld world) : IClassFixture<SmallReferenceWorld>
{
    [Fact]
    public void Every_model_is_sampled_with_the_same_noise()
    {
        using var model = world.NewBase();
        var textOnly = ReferenceModels.Create("text-only", model);
        using var data = new ReferenceDataset(world.Dataset, world.Train.GroupBy(e => e.Character).Select(g => g.First()).Take(2), 32);
        using var view = ReferenceComparison.Build(data.Items, [new NamedModel("first", model, textOnly), new NamedModel("second", model, textOnly)],
            new ReferenceSamplingOptions { Steps = 2, Seed = 3 }, samplesPerExample: 2, cellSize: 32);
        Assert.Equal(["references (face, face, clothes, clothes)", "first", "second"], view.Titles);
        Assert.All(view.Grids, g => Assert.Equal(2, g.RowCount));
        Assert.Equal(4, view.Grids[0].ColumnCount);
        Assert.Equal(2, view.Grids[1].ColumnCount);
        Assert.Equal(view.Grids[1].ToPng(), view.Grids[2].ToPng());
        Assert.NotEqual(view.Grids[0].ToPng(), view.Grids[1].ToPng());
    }
}
