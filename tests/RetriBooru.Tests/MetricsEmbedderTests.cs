using RetriBooru.Metrics;
using SkiaSharp;
using Xunit;

namespace RetriBooru.Tests;

public class MetricsEmbedderTests
{
    [Fact]
    public void ResNet18_puts_an_image_closer_to_its_resize_than_to_an_unrelated_image()
    {
        var rng = new Random(3);
        var a = MetricsShapeWorld.RandomScene(new("red", "purple", true), rng) with { Background = "stripes" };
        var b = MetricsShapeWorld.RandomScene(new("green", "black", false), rng) with { Background = "dots" };
        using var image = MetricsShapeWorld.Draw(a, 160);
        using var other = MetricsShapeWorld.Draw(b, 160);
        using var resized = ImageOps.Resize(image.Image, 97, 97);
        using var embedder = new ResNet18Embedder();
        var e = embedder.Embed(image.Image);
        Assert.Equal(512, e.Length);
        Assert.Equal(1.0, VectorMath.Norm(e), 4);
        double toResize = VectorMath.Dot(e, embedder.Embed(resized));
        double toOther = VectorMath.Dot(e, embedder.Embed(other.Image));
        Assert.True(toResize > 0.9, $"resize similarity {toResize}");
        Assert.True(toResize > toOther + 0.1, $"resize {toResize} vs unrelated {toOther}");
        // Deterministic: the same image gives the same vector.
        Assert.Equal(e, embedder.Embed(image.Image));
    }

    [Fact]
    public void ResNet18_reports_a_missing_model_folder_by_path()
    {
        using var dir = new TempDir();
        var error = Assert.Throws<FileNotFoundException>(() => new ResNet18Embedder(dir.Path));
        Assert.Contains(dir.Path, error.Message);
        Assert.Contains("Microsoft.ML.DnnImageFeaturizer.ResNet18", error.Message);
    }

    [Fact]
    public void MiniLM_puts_paraphrases_closer_than_unrelated_sentences()
    {
        using var embedder = new MiniLmTextEmbedder();
        var v = embedder.Embed(["a girl with long red hair", "a young woman whose hair is red and long", "the truck is parked on the highway", "striped background"]);
        Assert.All(v, x => Assert.Equal(384, x.Length));
        Assert.All(v, x => Assert.Equal(1.0, VectorMath.Norm(x), 4));
        double paraphrase = VectorMath.Dot(v[0], v[1]);
        double unrelated = VectorMath.Dot(v[0], v[2]);
        Assert.True(paraphrase > unrelated + 0.3, $"paraphrase {paraphrase} vs unrelated {unrelated}");
        Assert.Empty(embedder.Embed(Array.Empty<string>()));
    }
}
