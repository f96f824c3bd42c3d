using RetriBooru.Settings;
using RetriBooru.Data;
using RetriBooru.Data.Synth;
using RetriBooru.Metrics;
using Xunit;

namespace RetriBooru.Tests;

public class SwdAnalysisTests
{
    [Fact]
    public void Sanity_cases_on_real_dataset_images_order_as_the_definition_says()
    {
        Torch.Load();
        using var tmp = new TempDir();
        var dataset = tmp.File("data");
        SynthDataset.Create(dataset, new SynthOptions { Characters = 8, OutfitsPerCharacter = 2, ImagesPerCharacter = 16, Size = 32, Seed = 21 });
        using var suite = EvaluationSuite.Create(dataset, seed: 3);
        var example = ManifestReader.Read(dataset, ReferenceScheme.B, SplitNames.Train).First();
        var cases = SwdAnalysis.SanityCases(suite, example, count: 4, imageSize: 32).ToDictionary(c => c.Name);
        Assert.Equal(0, cases["copy"].Swd, 6);
        Assert.True(cases["random"].Swd < 0.05, $"random images scored {cases["random"].Swd}");
        // With attribute agreement as the identity (the default on synthetic data), keeping the identity while the
        // scene varies scores highest, as the definition says.
        Assert.True(cases["ideal"].Swd > cases["random"].Swd + 0.05, $"ideal {cases["ideal"].Swd} vs random {cases["random"].Swd}");

        var images = SwdAnalysis.Load(cases["ideal"].ImagePaths, 32);
        var refs = example.References.Select(r => new ScoringReference(RetriBooru.Imaging.ImageTensor.LoadBitmap(Path.Combine(dataset, r.Image), 32), r.Concept)).ToList();
        var walk = SwdAnalysis.Explain(suite, images, refs, 32, SwdAnalysis.ExpectedFor(suite, example.References));
        Assert.Equal("attribute agreement", walk.IdentityMeasure);
        Assert.Equal(cases["ideal"].Swd, walk.Swd, 9);
        Assert.Equal(images.Count, walk.PairDiversity.Length);
        Assert.All(Enumerable.Range(0, images.Count), i => Assert.Equal(0, walk.PairDiversity[i][i], 9));
        Assert.Equal(images.Count, walk.Table().Count);
        // Pairs of different images of varied scenes must differ in their answers: the diversity term works.
        Assert.True(walk.PairDiversity.SelectMany((row, i) => row.Where((_, j) => j != i)).Average() > 0.1);
        Assert.All(walk.IdentityWeights, w => Assert.InRange(w, 0, 1));
        // Without expected attributes the walkthrough falls back to the embedding identity.
        Assert.Equal("embedding", SwdAnalysis.Explain(suite, images, refs, 32).IdentityMeasure);
        foreach (var i in images) i.Dispose();
        foreach (var r in refs) r.Image.Dispose();
    }
}
