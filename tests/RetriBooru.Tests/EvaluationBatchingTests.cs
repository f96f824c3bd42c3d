using RetriBooru.Settings;
using RetriBooru.Metrics;
using SkiaSharp;
using Xunit;

namespace RetriBooru.Tests;

/// <summary>
/// The evaluation embeds in batches (ResNet18 with its batch dimension freed) and on the runtime's threads: every vector,
/// and so every window and score, must be what one image at a time on one thread gives.
/// </summary>
public class EvaluationBatchingTests
{
    static SKBitmap RandomImage(int width, int height, Random random, SKAlphaType alpha = SKAlphaType.Premul)
    {
        var bitmap = new SKBitmap(new SKImageInfo(width, height, SKColorType.Rgba8888, alpha));
        var bytes = new byte[width * height * 4];
        random.NextBytes(bytes);
        for (int i = 3; i < bytes.Length; i += 4) bytes[i] = 255;
        System.Runtime.InteropServices.Marshal.Copy(bytes, 0, bitmap.GetPixels(), bytes.Length);
        return bitmap;
    }

    static double MaxDifference(float[] a, float[] b) => a.Zip(b, (x, y) => Math.Abs((double)x - y)).Max();

    [Fact]
    public void ResNet18_batch_on_two_threads_gives_the_single_image_vectors_for_images_of_different_sizes()
    {
        var random = new Random(5);
        // More images than one ONNX run takes, of sizes from a window of a 32 px sample to a large picture.
        int[][] sizes = [[16, 16], [24, 24], [32, 32], [97, 61], [160, 160], [8, 40]];
        var images = Enumerable.Range(0, ResNet18Embedder.MaxBatch + 2).Select(i => RandomImage(sizes[i % sizes.Length][0], sizes[i % sizes.Length][1], random)).ToList();
        try
        {
            using var single = new ResNet18Embedder(intraOpThreads: 1);
            using var batched = new ResNet18Embedder(intraOpThreads: 2);
            var embeddings = batched.EmbedBatch(images);
            var features = batched.FeaturesBatch(images);
            Assert.Equal(images.Count, embeddings.Length);
            for (int i = 0; i < images.Count; i++)
            {
                var alone = single.Features(images[i]);
                Assert.True(MaxDifference(alone, features[i]) <= 1e-5, $"image {i}: features differ by {MaxDifference(alone, features[i])}");
                Assert.True(MaxDifference(single.Embed(images[i]), embeddings[i]) <= 1e-5, $"image {i}: embeddings differ");
            }
            Assert.Empty(batched.EmbedBatch([]));
        }
        finally
        {
            foreach (var image in images) image.Dispose();
        }
    }

    [Fact]
    public void KID_features_of_a_batch_of_samples_give_their_whole_window_embeddings_bit_for_bit()
    {
        var random = new Random(17);
        // Opaque, as the sampler writes them (ImageTensor.ToBitmap); their window crops are premultiplied copies.
        var samples = Enumerable.Range(0, 4).Select(_ => RandomImage(32, 32, random, SKAlphaType.Opaque)).ToList();
        try
        {
            using var plain = new ResNet18Embedder(intraOpThreads: 2);
            var wrapped = new ResNet18Embedder(intraOpThreads: 2);
            using var keeping = new EvaluationEmbeddingCache(wrapped);
            var features = keeping.FeaturesKeepingEmbeddings(wrapped, samples);
            Assert.Equal(samples.Count, keeping.Computed);
            foreach (var (sample, k) in samples.Select((s, k) => (s, k)))
            {
                // What Locate embeds without the kept vector: the sample's 14 windows in one batch, the whole image first.
                var windows = EvaluationViews.Windows(32, 32).Select(w => ImageOps.Crop(sample, w)).ToList();
                var embedded = plain.EmbedBatch(windows);
                Assert.Equal(embedded[0], keeping.Embed(windows[0])); // exact: the kept vector is the one ResNet18 gives in the window batch
                Assert.Equal(plain.FeaturesBatch(samples)[k], features[k]);
                foreach (var w in windows) w.Dispose();
            }
            Assert.Equal(samples.Count, keeping.Computed); // every whole window was a hit
        }
        finally
        {
            foreach (var image in samples) image.Dispose();
        }
    }

    [Fact]
    public void Locate_picks_the_window_a_one_window_at_a_time_search_picks()
    {
        var random = new Random(11);
        using var embedder = new ResNet18Embedder(intraOpThreads: 1);
        using var cached = new EvaluationEmbeddingCache(new ResNet18Embedder(intraOpThreads: 2));
        for (int trial = 0; trial < 3; trial++)
        {
            using var image = RandomImage(32, 32, random);
            // A reference cut from the image itself, so one window scores clearly best.
            using var reference = ImageOps.Crop(image, new SKRectI(8 * trial, 0, 8 * trial + 16, 16));
            using var unrelated = RandomImage(20, 20, random);
            IReadOnlyList<SKBitmap> references = [reference, unrelated];
            // The search before batching: each window embedded alone, the first best in window order wins.
            var referenceEmbeddings = references.Select(embedder.Embed).ToList();
            SKRectI expected = default;
            double bestScore = double.NegativeInfinity;
            foreach (var window in EvaluationViews.Windows(32, 32))
            {
                using var crop = ImageOps.Crop(image, window);
                double score = IdentitySimilarity.MeanCosine(embedder.Embed(crop), referenceEmbeddings);
                if (score > bestScore) (expected, bestScore) = (window, score);
            }
            Assert.Equal(expected, EvaluationViews.Locate(IdentityView.BestWindow, embedder, image, references));
            Assert.Equal(expected, EvaluationViews.Locate(IdentityView.BestWindow, cached, image, references));
            Assert.Equal(expected, EvaluationViews.Locate(IdentityView.BestWindow, cached, image, references)); // now from the cache
        }
    }

    /// <summary>A cheap deterministic embedder (the pixel sums of a few stripes), slow enough that calls overlap.</summary>
    sealed class PixelSumEmbedder : IImageEmbedder
    {
        public string Name => "pixel-sums";
        public int Dimension => 8;

        public float[] Embed(SKBitmap image)
        {
            var bytes = image.Bytes;
            var v = new float[Dimension];
            for (int i = 0; i < bytes.Length; i++) v[i % Dimension] += bytes[i] * (1 + i % 7);
            Thread.SpinWait(2000);
            return v;
        }

        public void Dispose() { }
    }

    [Fact]
    public void Embedding_cache_gives_every_image_its_own_vector_when_called_from_many_threads()
    {
        // A guard for the lock, not a reproduction: with the unlocked dictionary this test also passed on 2 cores.
        var random = new Random(2);
        var images = Enumerable.Range(0, 400).Select(_ => RandomImage(6, 6, random)).ToList();
        try
        {
            var plain = new PixelSumEmbedder();
            var expected = images.Select(plain.Embed).ToList();
            for (int round = 0; round < 5; round++)
            {
                using var cache = new EvaluationEmbeddingCache(new PixelSumEmbedder());
                // Every image is asked for twice, by different threads, singly and in small batches.
                Parallel.For(0, 2 * images.Count, new ParallelOptions { MaxDegreeOfParallelism = 8 }, k =>
                {
                    int i = k % images.Count;
                    var vector = k % 3 == 0 ? cache.EmbedAll([images[i], images[(i + 1) % images.Count]])[0] : cache.Embed(images[i]);
                    Assert.Equal(expected[i], vector);
                });
                Assert.Equal(images.Count, cache.Computed);
                for (int i = 0; i < images.Count; i++) Assert.Equal(expected[i], cache.Embed(images[i]));
            }
        }
        finally
        {
            foreach (var image in images) image.Dispose();
        }
    }

    [Fact]
    public void Crops_and_resizes_of_one_bitmap_on_many_threads_equal_the_sequential_ones_byte_for_byte()
    {
        using var image = RandomImage(32, 32, new Random(4));
        var windows = EvaluationViews.Windows(32, 32);
        byte[] CropAndResize(SKRectI window)
        {
            using var crop = ImageOps.Crop(image, window);
            using var resized = ImageOps.Resize(crop, ResNet18Embedder.InputSize, ResNet18Embedder.InputSize);
            return resized.Bytes;
        }
        var expected = windows.Select(CropAndResize).ToList();
        for (int round = 0; round < 4; round++)
        {
            var got = new byte[windows.Count * 4][];
            Parallel.For(0, got.Length, new ParallelOptions { MaxDegreeOfParallelism = 8 }, k => got[k] = CropAndResize(windows[k % windows.Count]));
            for (int k = 0; k < got.Length; k++) Assert.True(expected[k % windows.Count].AsSpan().SequenceEqual(got[k]), $"window {k % windows.Count} differs");
        }
    }
}
